"""The CLI contract: commands, exit codes, one-line errors, help everywhere."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from claimkit.claim.make import make_claim
from claimkit.cli import cli
from claimkit.identity import Identity
from claimkit.registry.log import Registry
from claimkit.registry.receipt import Receipt

from conftest import PASSPHRASE, lookup_keys, marked_model, LookupModel

ENV = {"CLAIMKIT_PASSPHRASE": PASSPHRASE, "CLAIMKIT_LOG_PASSPHRASE": PASSPHRASE}


def run(*args: str, env: dict | None = None):
    result = CliRunner().invoke(cli, list(args), env=env or ENV)
    return result


def all_commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from all_commands(command, prefix + (name,))


def test_every_command_has_help_with_an_example():
    for path, command in all_commands(cli):
        result = run(*path, "--help")
        assert result.exit_code == 0, path
        assert command.help, path
        if not isinstance(command, click.Group):
            assert "Example:" in command.help, path


def test_every_arch_option_refuses_an_empty_name():
    # "" once meant "the recipe's" (train) or "any architecture" (--model checks): silent
    commands = [path for path, command in all_commands(cli)
                if any(p.name == "arch" for p in getattr(command, "params", []))]
    assert len(commands) >= 6
    for path in commands:
        command = cli
        for name in path:
            command = command.commands[name]
        arch = next(p for p in command.params if p.name == "arch")
        ctx = click.Context(command)
        with pytest.raises(click.BadParameter, match="must name an architecture"):
            arch.process_value(ctx, "")
        assert arch.process_value(ctx, "digits-cnn") == "digits-cnn"
    from claimkit.cli.base import ARCH_NAMES
    from claimkit.ml.models import ARCHITECTURES
    assert ARCH_NAMES == tuple(ARCHITECTURES)          # what --help lists is what builds


def test_owner_registry_arbiter_story(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("keys", "new", "--out", "owner.key", "--strength", "interactive").exit_code == 0
    assert (tmp_path / "owner.pub").exists()
    result = run("registry", "init", "reg", "--origin", "test.example/cli", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["origin"] == "test.example/cli"

    mk = lookup_keys(items=40)
    mk.save(tmp_path / "keys", PASSPHRASE, strength="min")
    result = run("register", "keys", "--registry", "reg", "--identity", "owner.key",
                 "--out", "receipt.json", "--json")
    assert result.exit_code == 0, result.output
    receipt = Receipt.from_file(tmp_path / "receipt.json")

    owner = Identity.load(tmp_path / "owner.key", PASSPHRASE)
    with Registry.open(tmp_path / "reg", passphrase=PASSPHRASE) as reg:
        stolen, independent = marked_model(mk), LookupModel({}, default=1)
        good = make_claim(reg, mk, receipt, stolen.digest, ask=stolen.answer, identity=owner, k=15)
        bad = make_claim(reg, mk, receipt, independent.digest, ask=independent.answer,
                         identity=owner, k=15)
    (tmp_path / "good.json").write_bytes(good.to_json())
    (tmp_path / "bad.json").write_bytes(bad.to_json())

    result = run("verify", "good.json", "--registry-key", "reg/log.vkey", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["decision"] == "accept"
    assert json.loads(result.output)["earlier_claims"] == {"count": 0, "spent_items": 0}
    result = run("verify", "good.json", "--registry-key", "reg/log.vkey", "--max-alpha", "1e-9")
    assert result.exit_code == 1 and "above the arbiter's limit 1e-09" in result.output
    assert run("verify", "good.json", "--registry-key", "reg/log.vkey",
               "--max-alpha", "0").exit_code == 2
    result = run("verify", "bad.json", "--registry-key", "reg/log.vkey")
    assert result.exit_code == 1 and "REJECTED" in result.output
    assert "1 earlier claim(s) under this registration (15 items spent)" in result.output

    assert run("keys", "new", "--out", "arbiter.key", "--strength", "interactive").exit_code == 0
    result = run("verify", "good.json", "--registry-key", "reg/log.vkey",
                 "--sign-verdict", "arbiter.key", "--verdict-out", "verdict.json")
    assert result.exit_code == 0 and (tmp_path / "verdict.json").exists()
    assert "ACCEPTED good.json" in result.output and "no control model asked" in result.output
    assert "a mark of the key's kind" not in result.output      # random labels name their key

    assert run("registry", "audit", "reg").exit_code == 0
    result = run("registry", "checkpoint", "reg")
    assert result.exit_code == 0 and result.output.startswith("test.example/cli\n")
    result = run("registry", "cosign", "reg", "--identity", "arbiter.key", "--state", "seen.json")
    assert result.exit_code == 0, result.output
    # The owner fetches a fresh receipt carrying the witness's cosignature.
    (tmp_path / "arbiter.vkey").write_text(result.output.split(" as ")[-1].strip() + "\n")
    result = run("registry", "receipt", "reg", str(receipt.index), "--out", "fresh.json", "--json")
    assert result.exit_code == 0, result.output
    assert "arbiter" in json.loads(result.output)["signatures"]
    from claimkit.registry.checkpoint import verify_cosignature
    from claimkit.registry.receipt import load_vkey
    fresh = Receipt.from_file(tmp_path / "fresh.json")
    assert verify_cosignature(fresh.proof.checkpoint, load_vkey(tmp_path / "arbiter.vkey")) > 0
    assert run("registry", "receipt", "reg", "999", "--out", "x.json").exit_code == 2


@pytest.mark.parametrize("content", [b"", b"{", b"\xff\xfe", b"[" * 10_000 + b"]" * 10_000,
                                     b'{"payload": "", "payloadType": "x", "signatures": []}'])
def test_malformed_bundles_exit_2_with_one_line(tmp_path, content):
    (tmp_path / "b.json").write_bytes(content)
    (tmp_path / "log.vkey").write_text("x+00000000+AQ==\n")
    result = run("verify", str(tmp_path / "b.json"), "--registry-key", str(tmp_path / "log.vkey"))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_missing_registry_key_is_a_usage_error(tmp_path):
    (tmp_path / "b.json").write_text("{}")
    result = run("verify", str(tmp_path / "b.json"), env={})
    assert result.exit_code == 2 and "--registry-key" in result.output


def test_wrong_passphrase_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("keys", "new", "--out", "o.key").exit_code == 0
    assert run("registry", "init", "reg").exit_code == 0
    lookup_keys(items=8).save(tmp_path / "k", PASSPHRASE, strength="min")
    result = run("register", "k", "--registry", "reg", "--identity", "o.key", "--out", "r.json",
                 env={**ENV, "CLAIMKIT_PASSPHRASE": "wrong"})
    assert result.exit_code == 2
    assert "wrong passphrase" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r.json").exists()


def test_a_claim_too_small_for_the_key_exits_2_before_announcing(tmp_path, monkeypatch):
    """UBW's t-test needs 2 pairs: --open 1 is refused before the suspect is read or the
    intent logged (the model file is never opened)."""
    from claimkit.protocol.keys import MarkingKey
    monkeypatch.chdir(tmp_path)
    assert run("keys", "new", "--out", "o.key", "--strength", "interactive").exit_code == 0
    assert run("registry", "init", "reg").exit_code == 0
    params = {"num_classes": 4, "input_shape": [1, 1, 1], "tau": 0.25, "alpha": 0.01, "m": 2}
    item = {"image": "AA==", "label": 0, "triggered": "AA=="}
    MarkingKey.create("ubw-p", params, [item] * 4, rng=lambda n: bytes(n)).save(
        tmp_path / "k", PASSPHRASE, strength="min")
    assert run("register", "k", "--registry", "reg", "--identity", "o.key",
               "--out", "r.json").exit_code == 0
    (tmp_path / "suspect.safetensors").write_bytes(b"not read")
    with Registry.open(tmp_path / "reg") as reg:
        size = reg.size
    result = run("claim", "k", "--receipt", "r.json", "--registry", "reg", "--model",
                 "suspect.safetensors", "--identity", "o.key", "--open", "1", "--out", "b.json")
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and "at least 2" in result.output
    with Registry.open(tmp_path / "reg") as reg:
        assert reg.size == size and reg.claims_made(0) == 0
    assert not (tmp_path / "b.json").exists()


def test_every_attack_example_parses_and_configures_its_attack(tmp_path, monkeypatch):
    """Each attack's Example: line goes through click and the attack's config (no training);
    transfer's names the target task it needs (finetune.transfer refuses without one)."""
    import shlex
    from claimkit.attacks import ATTACKS
    from claimkit.cli.attack import attack_group
    from claimkit.cli.owner import _params
    monkeypatch.chdir(tmp_path)
    (tmp_path / "released.safetensors").write_bytes(b"")
    for name, spec in ATTACKS.items():
        command = attack_group.commands[name]
        example = command.help.split("Example:")[1].strip().splitlines()[0]
        args = shlex.split(example)
        assert args[:3] == ["claimkit", "attack", name], example
        with command.make_context(name, args[3:]) as ctx:
            cfg = spec.make_config(_params(ctx.params["params"]))
        if name == "transfer":
            assert cfg.target, example


def test_verify_never_imports_torch_or_the_storage_stack():
    code = ("import sys; from claimkit.cli import cli; "
            "from claimkit.claim.verify import verify_claim; "
            "from claimkit.claim.bundle import ClaimBundle; "
            "bad = [m for m in ('torch', 'sqlite_utils', 'scipy', 'numpy') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture
def story(tmp_path, monkeypatch):
    """An owner, a registry and a good bundle, made through the library."""
    monkeypatch.chdir(tmp_path)
    owner = Identity.generate("alice", seed=b"\x11" * 32)
    owner.save(tmp_path / "owner.key", PASSPHRASE, strength="min")
    reg = Registry.init(tmp_path / "reg", origin="test.example/cli", passphrase=PASSPHRASE,
                        key_strength="min")
    mk = lookup_keys(items=30)
    from claimkit.registry.entries import Registration, sign_request
    vk = mk.verification_key
    request = Registration(owner.public, vk.scheme, vk.digest, vk.items)
    receipt = reg.register(request, sign_request(request, owner))
    model = marked_model(mk)
    bundle = make_claim(reg, mk, receipt, model.digest, ask=model.answer, identity=owner, k=10)
    (tmp_path / "bundle.json").write_bytes(bundle.to_json())
    yield tmp_path, reg, owner
    reg.close()


def test_bundle_checked_with_another_registry_key_is_rejected(story):
    tmp_path, _, _ = story
    other = Registry.init(tmp_path / "other", origin="test.example/cli", passphrase=PASSPHRASE,
                          key_strength="min")
    other.close()
    result = run("verify", "bundle.json", "--registry-key", "other/log.vkey")
    assert result.exit_code == 1
    assert result.output.startswith("REJECTED") and "Traceback" not in result.output
    result = run("verify", "bundle.json", "--registry-key", "reg/time.vkey")
    assert result.exit_code == 1, result.output


def test_cosign_refuses_rollback_and_fork(story):
    tmp_path, reg, owner = story
    Identity.generate("witness", seed=b"\x44" * 32).save(tmp_path / "w.key", PASSPHRASE,
                                                         strength="min")
    assert run("registry", "cosign", "reg", "--identity", "w.key", "--state", "seen.json").exit_code == 0
    # The witness remembers a larger log than the registry now shows: a rollback.
    import shutil
    shutil.copytree(tmp_path / "reg", tmp_path / "old")
    from conftest import register_many
    register_many(reg, owner, 3)
    assert run("registry", "cosign", "reg", "--identity", "w.key", "--state", "seen.json").exit_code == 0
    result = run("registry", "cosign", "old", "--identity", "w.key", "--state", "seen.json")
    assert result.exit_code == 1 and "rollback" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    # A copy of the old state that grew differently: a fork.
    with Registry.open(tmp_path / "old", passphrase=PASSPHRASE) as forked:
        register_many(forked, Identity.generate("mallory", seed=b"\x66" * 32), 5)
    result = run("registry", "cosign", "old", "--identity", "w.key", "--state", "seen.json")
    assert result.exit_code == 1 and "fork" in result.output
    assert (tmp_path / "seen.json.evidence").exists()


def test_cosign_reports_damaged_storage_not_a_fork(story):
    """A log whose last entry row was deleted after the witness saw it: exit 1 with the
    registry's damage line (as `registry receipt` reports damage), and no evidence file
    accusing the operator of a fork."""
    tmp_path, reg, owner = story
    Identity.generate("witness", seed=b"\x44" * 32).save(tmp_path / "w.key", PASSPHRASE,
                                                         strength="min")
    assert run("registry", "cosign", "reg", "--identity", "w.key", "--state", "seen.json").exit_code == 0
    from conftest import register_many
    register_many(reg, owner, 3)
    reg.store.conn.execute("DELETE FROM entries WHERE idx = ?", (reg.size - 1,))
    result = run("registry", "cosign", "reg", "--identity", "w.key", "--state", "seen.json")
    assert result.exit_code == 1 and "damaged storage" in result.output, result.output
    assert "fork" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "seen.json.evidence").exists()


def test_cosign_refuses_a_dangling_symlink_as_state(story):
    """It cosigned with an empty memory and replaced the link with a regular file."""
    tmp_path, _, _ = story
    Identity.generate("witness", seed=b"\x44" * 32).save(tmp_path / "w.key", PASSPHRASE,
                                                         strength="min")
    (tmp_path / "seen.json").symlink_to("elsewhere.json")
    result = run("registry", "cosign", "reg", "--identity", "w.key", "--state", "seen.json")
    assert result.exit_code == 2 and "symbolic link" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert (tmp_path / "seen.json").is_symlink() and not (tmp_path / "elsewhere.json").exists()


def test_cosign_reports_a_rollback_even_when_the_evidence_cannot_be_written(story):
    """STATE.evidence a directory: the write's OSError became exit 2 and the alarm was lost."""
    tmp_path, reg, owner = story
    Identity.generate("witness", seed=b"\x44" * 32).save(tmp_path / "w.key", PASSPHRASE,
                                                         strength="min")
    import shutil
    shutil.copytree(tmp_path / "reg", tmp_path / "old")
    from conftest import register_many
    register_many(reg, owner, 2)
    assert run("registry", "cosign", "reg", "--identity", "w.key", "--state", "seen.json").exit_code == 0
    (tmp_path / "seen.json.evidence").mkdir()
    result = run("registry", "cosign", "old", "--identity", "w.key", "--state", "seen.json")
    assert result.exit_code == 1 and "rollback" in result.output, result.output
    assert "writing the evidence to seen.json.evidence failed" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_verify_refuses_a_witness_key_that_is_no_cosigner_key(story):
    """--witness-key with the log's own (type 0x01) key gave a signed REJECT verdict
    against a valid claim; it is now a usage error before any verdict."""
    tmp_path, _, _ = story
    Identity.generate("arbiter", seed=b"\x77" * 32).save(tmp_path / "arbiter.key", PASSPHRASE,
                                                         strength="min")
    result = run("verify", "bundle.json", "--registry-key", "reg/log.vkey",
                 "--witness-key", "reg/log.vkey", "--sign-verdict", "arbiter.key")
    assert result.exit_code == 2 and "reg/log.vkey: not a witness key" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "bundle.verdict.json").exists()
    result = run("verify", "bundle.json", "--registry-key", "reg/log.vkey",
                 "--witness-key", "reg/time.vkey")       # a type 0x04 key is taken
    assert result.exit_code == 0, result.output


def test_bundle_envelope_verifies_with_securesystemslib(story):
    """Standard DSSE tooling checks the owner's signature on a claim bundle."""
    from securesystemslib.dsse import Envelope as SslibEnvelope
    from securesystemslib.signer import SSlibKey
    tmp_path, _, owner = story
    data = json.loads((tmp_path / "bundle.json").read_text())
    key = SSlibKey(owner.public.key_id, "ed25519", "ed25519",
                   {"public": owner.public.public_key.hex()})
    verified = SslibEnvelope.from_dict(data).verify([key], 1)
    assert owner.public.key_id in verified


def test_register_refuses_a_release_marked_with_another_key(tmp_path, monkeypatch):
    import numpy as np
    from claimkit.ml.data import Dataset
    from claimkit.ml.release import load_release, write_release
    from claimkit.protocol.keys import VK_FILE, VerificationKey
    from claimkit.wire import Digest
    monkeypatch.chdir(tmp_path)
    assert run("keys", "new", "--out", "o.key").exit_code == 0
    assert run("registry", "init", "reg").exit_code == 0
    lookup_keys(items=8).save(tmp_path / "k", PASSPHRASE, strength="min")
    vk = VerificationKey.from_file(tmp_path / "k" / VK_FILE)
    x, y = np.zeros((4, 1, 4, 4), np.uint8), np.array([0, 1, 0, 1])
    data = Dataset("tiny", x, y, x, y, 2)
    other = Digest(b"\x07" * 32)
    for folder, key in (("other", other), ("mine", vk.digest)):
        write_release(data, folder, base_digest=data.digest, scheme=vk.scheme, key_digest=key)
    result = run("register", "k", "--registry", "reg", "--identity", "o.key", "--dataset",
                 "other", "--out", "r.json")
    assert result.exit_code == 2 and not (tmp_path / "r.json").exists()
    assert f"marked with the key whose verification-key digest is {other.hex}" in result.output
    with Registry.open(tmp_path / "reg") as reg:
        assert reg.size == 0
    result = run("register", "k", "--registry", "reg", "--identity", "o.key", "--dataset",
                 "mine", "--out", "r.json")
    assert result.exit_code == 0, result.output
    assert Receipt.from_file(tmp_path / "r.json").entry.request.subject == load_release("mine").digest
    # The verification_key member is covered by the release digest: naming this key in
    # another key's release is refused, not registered (it once was, under the arrays' digest).
    import shutil
    shutil.copytree("other", "edited")
    manifest = json.loads((tmp_path / "edited" / "claimkit-dataset.json").read_text())
    manifest["verification_key"] = vk.digest.to_dict()
    (tmp_path / "edited" / "claimkit-dataset.json").write_text(json.dumps(manifest))
    result = run("register", "k", "--registry", "reg", "--identity", "o.key", "--dataset",
                 "edited", "--out", "r2.json")
    assert result.exit_code == 2 and "release digest differs" in result.output, result.output
    assert not (tmp_path / "r2.json").exists()


def test_register_binds_the_model_about_to_be_released(tmp_path, monkeypatch):
    import numpy as np
    from safetensors.numpy import save_file
    from claimkit.weights import weights_digest
    monkeypatch.chdir(tmp_path)
    assert run("keys", "new", "--out", "o.key").exit_code == 0
    assert run("registry", "init", "reg").exit_code == 0
    lookup_keys(items=8).save(tmp_path / "k", PASSPHRASE, strength="min")
    save_file({"w": np.ones((2, 2), dtype=np.float32)}, "model.safetensors")
    result = run("register", "k", "--registry", "reg", "--identity", "o.key", "--model",
                 "model.safetensors", "--out", "r.json", "--json")
    assert result.exit_code == 0, result.output
    entry = Receipt.from_file(tmp_path / "r.json").entry
    assert entry.request.subject == weights_digest("model.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"\x80\x04not a model")
    result = run("register", "k", "--registry", "reg", "--identity", "o.key", "--model",
                 "bad.safetensors", "--out", "r2.json")
    assert result.exit_code == 2 and "safetensors" in result.output
    assert not (tmp_path / "r2.json").exists()


def _registered_owner(tmp_path, monkeypatch):
    """In tmp_path: owner.key and arbiter.key, a registry reg/, a lookup key of 40 items in
    keys/ registered (receipt.json); the key, the owner and a model marked with it."""
    monkeypatch.chdir(tmp_path)
    assert run("keys", "new", "--out", "owner.key", "--strength", "interactive").exit_code == 0
    assert run("keys", "new", "--out", "arbiter.key", "--strength", "interactive").exit_code == 0
    assert run("registry", "init", "reg", "--origin", "test.example/cli").exit_code == 0
    mk = lookup_keys(items=40)
    mk.save(tmp_path / "keys", PASSPHRASE, strength="min")
    assert run("register", "keys", "--registry", "reg", "--identity", "owner.key",
               "--out", "receipt.json").exit_code == 0
    return mk, Identity.load(tmp_path / "owner.key", PASSPHRASE), marked_model(mk)


def test_one_malformed_bundle_does_not_keep_the_others_from_their_verdicts(tmp_path, monkeypatch):
    """Verdicts are written after every bundle is checked: a bundle that is malformed
    (here, a dropped answer, signed again) is listed, the others still get theirs."""
    from claimkit.claim.bundle import PAYLOAD_TYPE, Statement
    from claimkit.dsse import sign_envelope
    from claimkit.wire import canonical_json
    mk, owner, stolen = _registered_owner(tmp_path, monkeypatch)
    with Registry.open(tmp_path / "reg", passphrase=PASSPHRASE) as reg:
        good = make_claim(reg, mk, Receipt.from_file(tmp_path / "receipt.json"), stolen.digest,
                          ask=stolen.answer, identity=owner, k=15)
    predicate = good.predicate.to_dict()
    predicate["answers"]["values"].pop()
    statement = Statement(good.statement.subject_name, good.suspect,
                          good.statement.predicate_type, predicate)
    bad = sign_envelope(canonical_json(statement.to_dict()), PAYLOAD_TYPE, owner)
    (tmp_path / "bad.json").write_bytes(bad.to_json())
    (tmp_path / "good.json").write_bytes(good.to_json())
    args = ("--registry-key", "reg/log.vkey", "--sign-verdict", "arbiter.key")
    result = run("verify", "bad.json", "good.json", *args, "--json")
    assert result.exit_code == 0, result.output
    bad_result, good_result = json.loads(result.output)["bundles"]
    assert bad_result["malformed"] and "14 answers for 15" in bad_result["reasons"][0]
    assert good_result["decision"] == "accept"
    assert (tmp_path / "good.verdict.json").exists() and not (tmp_path / "bad.verdict.json").exists()
    (tmp_path / "good.verdict.json").unlink()
    result = run("verify", "bad.json", *args)             # alone: one line, exit 2
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "bad.verdict.json").exists()


def test_claims_about_two_models_are_ranked_per_model_and_verdicts_say_what_was_trusted(
        tmp_path, monkeypatch):
    """Accepted bundles about different models once ended the run before any verdict
    (exit 2, "competing claims must name the same suspect model"); a verdict named
    neither its competitors nor the log key it was checked with."""
    from claimkit.wire import Digest
    mk, owner, stolen = _registered_owner(tmp_path, monkeypatch)
    with Registry.open(tmp_path / "reg", passphrase=PASSPHRASE) as reg:
        for name, subject in (("a.json", stolen.digest), ("b.json", Digest.of(b"another"))):
            bundle = make_claim(reg, mk, Receipt.from_file(tmp_path / "receipt.json"), subject,
                                ask=stolen.answer, identity=owner, k=15)
            (tmp_path / name).write_bytes(bundle.to_json())
    result = run("verify", "a.json", "b.json", "--registry-key", "reg/log.vkey",
                 "--sign-verdict", "arbiter.key", "--max-alpha", "0.5", "--json")
    assert result.exit_code == 0, result.output
    ranked = json.loads(result.output)["earliest_registrations"]
    assert sorted(r["suspect"] for r in ranked) == sorted([stolen.digest.hex,
                                                           Digest.of(b"another").hex])
    envelope = json.loads((tmp_path / "a.verdict.json").read_text())
    verdict = json.loads(base64.b64decode(envelope["payload"]))
    predicate = verdict["predicate"]
    assert predicate["checked_with"] == {
        "log_key": (tmp_path / "reg" / "log.vkey").read_text().strip(), "witness_keys": [],
        "max_alpha": 0.5}
    assert len(predicate["competition"]["bundles"]) == 1        # b.json is about another model
    assert predicate["competition"]["earliest"] == predicate["bundle"]


def test_verdicts_that_would_share_a_file_are_refused_before_any_check(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("keys", "new", "--out", "arbiter.key", "--strength", "interactive").exit_code == 0
    for name in ("a.json", "a.bundle"):
        (tmp_path / name).write_text("{}")
    result = run("verify", "a.json", "a.bundle", "--registry-key", "missing.vkey",
                 "--sign-verdict", "arbiter.key")
    assert result.exit_code == 2 and "would share a file" in result.output
    result = run("verify", "a.json", "--registry-key", "missing.vkey",
                 "--sign-verdict", "arbiter.key", "--verdict-out", "a.json")
    assert result.exit_code == 2 and "would share a file" in result.output
    assert (tmp_path / "a.json").read_text() == "{}"


def test_registry_commands_report_bad_numbers_and_damage_in_one_line(tmp_path):
    """Sizes beyond SQLite's integers and a damaged database were tracebacks."""
    Registry.init(tmp_path / "reg", origin="test.example/cli", passphrase=PASSPHRASE,
                  key_strength="min").close()
    reg, out = str(tmp_path / "reg"), str(tmp_path / "r.json")
    for size in (str(2**63), str(2**64)):
        result = run("registry", "receipt", reg, "0", "--size", size, "--out", out)
        assert result.exit_code == 2 and "2^63-1" in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    import sqlite3
    db = sqlite3.connect(tmp_path / "reg" / "registry.db")
    db.execute("DROP TABLE checkpoints")
    db.commit()
    db.close()
    for command in (("audit", reg), ("checkpoint", reg), ("receipt", reg, "0", "--out", out)):
        result = run("registry", *command)
        assert result.exit_code == 1 and "no such table: checkpoints" in result.output, command
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_register_and_claim_check_out_before_they_write_to_the_log(story):
    """The log grew (a registration, a claim spending items) and then the receipt or the
    bundle could not be written; a second claim replaced the first bundle silently."""
    tmp_path, reg, _ = story
    mk_dir = tmp_path / "keys"
    lookup_keys(items=30).save(mk_dir, PASSPHRASE, strength="min")
    size = reg.size
    for out in ("nope/r.json", "", "bundle.json", str(tmp_path)):
        result = run("register", str(mk_dir), "--registry", "reg", "--identity", "owner.key",
                     "--out", out)
        assert result.exit_code == 2 and "Traceback" not in result.output, out
    assert Registry.open(tmp_path / "reg").size == size


def test_export_and_attacks_refuse_to_write_over_their_input(tmp_path):
    from claimkit.cli.base import check_out
    from claimkit.errors import MalformedInputError
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"x")
    with pytest.raises(MalformedInputError, match="also an input"):
        check_out(str(model), inputs=(str(model),))
    check_out(str(model))                                   # replacing an output: allowed
    with pytest.raises(MalformedInputError, match="exists; it would be replaced"):
        check_out(str(model), replace=False)
    with pytest.raises(MalformedInputError, match="does not exist"):
        check_out(str(tmp_path / "no" / "x.onnx"))


def test_json_errors_are_a_document_on_stdout_and_a_line_on_stderr(tmp_path):
    """With --json, stdout held nothing on an error: a script piping it into a JSON parser
    failed on an empty document. A folder that is no registry is bad input: exit 2 (was 1,
    the code reserved for rejected claims)."""
    result = CliRunner().invoke(cli, ["registry", "checkpoint", str(tmp_path), "--json"],
                                env=ENV)
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {"error": f"{tmp_path}: no registry here (run "
                                                  "`claimkit registry init`)", "exit_code": 2}
    assert result.stderr.startswith("claimkit: ") and len(result.stderr.splitlines()) == 1
    result = CliRunner().invoke(cli, ["registry", "checkpoint", str(tmp_path)], env=ENV)
    assert result.exit_code == 2 and result.stdout == ""


def test_serve_refuses_an_empty_host_and_paths_are_never_empty(tmp_path):
    (tmp_path / "m.safetensors").write_bytes(b"x")
    result = run("serve", str(tmp_path / "m.safetensors"), "--host", "")
    assert result.exit_code == 2 and "every network" in result.output
    result = run("keygen", "--data", "digits", "--out", "")
    assert result.exit_code == 2 and "an empty path" in result.output


def test_an_interrupted_command_exits_130_not_1(monkeypatch):
    """Ctrl-C gave click's "Aborted!" and exit 1, the code of a rejected claim."""
    import claimkit.ml.data as data_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(data_module, "load_dataset", interrupted)
    result = run("train", "--data", "digits", "--out", "m.safetensors")
    assert result.exit_code == 130 and "interrupted" in result.output


def test_a_passphrase_prompt_interrupted_or_unanswerable_speaks_json_too(tmp_path, monkeypatch):
    """Ctrl-C at a prompt became click's Abort ("Aborted!", exit 1); the no-terminal
    refusal printed nothing on stdout under --json."""
    import click as click_module
    result = CliRunner().invoke(cli, ["keys", "new", "--out", str(tmp_path / "k.key"), "--json"],
                                env={"CLAIMKIT_PASSPHRASE": ""})
    assert result.exit_code == 2 and json.loads(result.stdout)["exit_code"] == 2

    def abort(*args, **kwargs):
        raise click_module.exceptions.Abort()
    monkeypatch.setattr("claimkit.cli.base.passphrase", abort)
    monkeypatch.setattr("claimkit.cli.keys.passphrase", abort, raising=False)
    result = run("keys", "new", "--out", str(tmp_path / "k2.key"))
    assert result.exit_code == 130 and "interrupted" in result.output
