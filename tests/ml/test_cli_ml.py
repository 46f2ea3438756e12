"""The owner's ML commands end to end: keygen, register, mark, train, claim, verify --model."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from claimkit.cli import cli

ENV = {"CLAIMKIT_PASSPHRASE": "pw", "CLAIMKIT_LOG_PASSPHRASE": "pw"}


def run(*args):
    return CliRunner().invoke(cli, list(args), env=ENV)


def test_owner_commands_make_a_claim_an_arbiter_accepts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("keys", "new", "--out", "owner.key").exit_code == 0
    assert run("registry", "init", "reg").exit_code == 0
    result = run("keygen", "--data", "digits", "-p", "items=40", "--out", "keys", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["items"] == 40
    assert run("register", "keys", "--registry", "reg", "--identity", "owner.key",
               "--out", "receipt.json").exit_code == 0
    result = run("mark", "keys", "--data", "digits", "--epochs", "12", "--device", "cpu",
                 "--out", "released.safetensors", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["trigger_accuracy"] == 1.0
    assert (tmp_path / "released.run.json").exists()
    assert run("train", "--data", "digits", "--epochs", "2", "--seed", "4", "--device", "cpu",
               "--out", "other.safetensors").exit_code == 0
    for seed in ("-5", str(2**64)):         # torch takes a signed 64-bit seed: exit 2, one line
        result = run("train", "--data", "digits", "--epochs", "0", "--seed", seed, "--out", "x")
        assert result.exit_code == 2 and "--seed" in result.output, result.output
    for command in ("train", "mark"):       # 10**12 epochs would run for ever: exit 2 at once
        result = run(command, *(("keys",) if command == "mark" else ()), "--data", "digits",
                     "--epochs", str(10**12), "--out", "x")
        assert result.exit_code == 2 and "--epochs" in result.output, result.output
    for model, expected in (("released.safetensors", 0), ("other.safetensors", 1)):
        bundle = f"{model}.bundle.json"
        result = run("claim", "keys", "--receipt", "receipt.json", "--registry", "reg", "--model",
                     model, "--identity", "owner.key", "--open", "20", "--out", bundle)
        assert result.exit_code == 0, result.output
        result = run("verify", bundle, "--registry-key", "reg/log.vkey", "--model", model,
                     "--report", "evidence")
        assert result.exit_code == expected, result.output
        assert (tmp_path / "evidence" / Path(bundle).stem / "evidence.png").stat().st_size > 0
    # The arbiter's own control model: an honest key does not accuse it, so the claim stands.
    result = run("verify", "released.safetensors.bundle.json", "--registry-key", "reg/log.vkey",
                 "--control", "other.safetensors", "--json")
    assert result.exit_code == 0, result.output
    (control,) = json.loads(result.output)["controls"]
    assert control["name"] == "other.safetensors" and not control["accepted"]
    result = run("verify", "other.safetensors.bundle.json", "--registry-key", "reg/log.vkey",
                 "--control", "other.safetensors")
    assert result.exit_code == 2 and "is the bundle's suspect itself" in result.output


def test_marking_with_a_key_for_other_data_is_refused(tmp_path, monkeypatch):
    from test_data import make_idx_set
    monkeypatch.chdir(tmp_path)
    make_idx_set(tmp_path)
    assert run("keygen", "--data", "digits", "-p", "items=10", "--out", "keys").exit_code == 0
    result = run("mark", "keys", "--data", "mnist", "--data-root", str(tmp_path), "--epochs", "0",
                 "--out", "m.safetensors")
    assert result.exit_code == 2 and "other data" in result.output
    assert not (tmp_path / "m.safetensors").exists()
    result = CliRunner().invoke(cli, ["mark", "keys", "--data", "digits", "--out", "m.safetensors"],
                                env={"CLAIMKIT_PASSPHRASE": "wrong"})
    assert result.exit_code == 2 and "wrong passphrase" in result.output


def test_an_unknown_param_lists_the_schemes_settable_ones_and_writes_nothing(tmp_path):
    """keygen's --help promises it: the list is how an owner finds a scheme's parameters."""
    expect = {"trigger-set": {"items", "alpha", "epsilon"}, "ubw-p": {"gamma", "decoys", "labels"},
              "ubw-c": {"steps", "fresh", "draw"}, "move": {"mode", "stylizer"},
              "ewe": {"source", "target", "fpr"}}
    for scheme, some in expect.items():
        result = run("keygen", "--scheme", scheme, "--data", "digits", "-p", "nope=1",
                     "--out", tmp_path / scheme)
        assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
        listed = set(result.output.split("settable: ")[1].rstrip(")\n").split(", "))
        assert some <= listed, (scheme, listed)
        assert not listed & {"num_classes", "input_shape", "data", "data_digest"}, scheme
        assert not (tmp_path / scheme).exists()
