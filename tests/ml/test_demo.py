"""`claimkit demo` tells the whole story on the embedded digits (about 20 s on 2 cores)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from claimkit.cli import cli


def test_demo_story_holds_and_its_bundles_verify(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    figures = json.loads((out / "demo.json").read_text())
    assert figures["stolen_claim_accepted"] and not figures["independent_claim_accepted"]
    assert figures["winner"] == "owner" and figures["released_trigger_accuracy"] == 1.0
    for name in ("owner.key", "owner.pub", "registry/log.vkey", "owner-registration.json",
                 "released.safetensors", "released.run.json", "bundle-stolen.json",
                 "bundle-independent.json", "verdict-stolen.json"):
        assert (out / name).exists(), name
    vkey = str(out / "registry" / "log.vkey")
    runner = CliRunner()
    accepted = runner.invoke(cli, ["verify", str(out / "bundle-stolen.json"), "--registry-key",
                                   vkey, "--model", str(out / "stolen.safetensors"),
                                   "--control", str(out / "independent.safetensors")])
    assert accepted.exit_code == 0, accepted.output
    assert "control" in accepted.output and figures["control_p"] > 0.01
    rejected = runner.invoke(cli, ["verify", str(out / "bundle-independent.json"),
                                   "--registry-key", vkey])
    assert rejected.exit_code == 1
    wrong_model = runner.invoke(cli, ["verify", str(out / "bundle-stolen.json"), "--registry-key",
                                      vkey, "--model", str(out / "independent.safetensors")])
    assert wrong_model.exit_code == 1 and "another model" in wrong_model.output
    both = runner.invoke(cli, ["verify", str(out / "bundle-stolen.json"), str(out / "bundle-thief.json"),
                               "--registry-key", vkey, "--json"])
    assert json.loads(both.output)["earliest_registration"]["registration_index"] == 0
    again = runner.invoke(cli, ["demo", "--out", str(out)])
    assert again.exit_code == 2 and "not empty" in again.output
