"""The ``claimkit`` command line: a thin layer over the library API.

Every command parses its arguments, calls one library function and prints the result;
a :class:`~claimkit.errors.ClaimkitError` becomes one line on stderr and the exit code
of its class (0 done or accepted, 1 rejected or a failed check, 2 malformed input or
usage). Library modules are imported inside the commands so that ``claimkit verify``
never pays for the registry's storage stack or torch.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from . import __version__
from .errors import EXIT_MALFORMED, EXIT_OK, EXIT_REJECTED, ClaimkitError

PASSPHRASE_ENV = "CLAIMKIT_PASSPHRASE"
LOG_PASSPHRASE_ENV = "CLAIMKIT_LOG_PASSPHRASE"


class _Group(click.Group):
    """Turns library errors into one line and the right exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ClaimkitError as e:
            _fail(str(e), e.exit_code)
        except OSError as e:
            _fail(f"{e.filename or ''}: {e.strerror}" if e.strerror else str(e), EXIT_MALFORMED)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"claimkit: {message}", err=True)
    sys.exit(code)


def _emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        click.echo(text)


def _passphrase(env: str, prompt: str, *, confirm: bool = False) -> str:
    value = os.environ.get(env)
    if value:
        return value
    if not sys.stdin.isatty():
        _fail(f"{prompt}: no terminal to ask on; set {env}", EXIT_MALFORMED)
    return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)


def _load_identity(path: str) -> Any:
    from .identity import Identity
    return Identity.load(path, _passphrase(PASSPHRASE_ENV, f"passphrase for {path}"))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="claimkit")
def cli() -> None:
    """Prove, later and to anyone, that a suspect model came from your work.

    Owners register commitments to their watermark keys in a transparency log before
    release, and later make signed claim bundles that anyone can check offline.

    Exit codes: 0 done or claim accepted, 1 claim rejected or a check failed,
    2 malformed input or usage error.
    """


# -- keys ---------------------------------------------------------------------------------
@cli.group(cls=_Group)
def keys() -> None:
    """Ed25519 identities for owners, arbiters and witnesses."""


@keys.command("new")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Private key file to write (encrypted, mode 0600); the public half goes beside it as .pub.")
@click.option("--name", default=None, help="A name for the identity (default: the file's stem).")
@click.option("--strength", type=click.Choice(["interactive", "moderate", "sensitive"]),
              default="interactive", show_default=True, help="Argon2id cost for the key file.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def keys_new(out: str, name: str | None, strength: str, as_json: bool) -> None:
    """Make a new identity: OUT (secret, encrypted) and OUT with .pub (public).

    The passphrase comes from CLAIMKIT_PASSPHRASE or a prompt.

    Example: claimkit keys new --out owner.key --name alice
    """
    from .identity import Identity
    identity = Identity.generate(name or Path(out).stem)
    identity.save(out, _passphrase(PASSPHRASE_ENV, f"new passphrase for {out}", confirm=True),
                  strength=strength)
    pub = Path(out).with_suffix(".pub")
    _emit(as_json, {"key": out, "public": str(pub), "name": identity.public.name,
                    "key_id": identity.public.key_id},
          f"wrote {out} (secret) and {pub} (public); key id {identity.public.key_id}")


# -- registry -----------------------------------------------------------------------------
@cli.group(cls=_Group)
def registry() -> None:
    """Operate a local registry: an append-only, signed transparency log."""


def _open_registry(directory: str, *, write: bool = False) -> Any:
    from .registry.log import Registry
    passphrase = None
    if write:
        passphrase = _passphrase(LOG_PASSPHRASE_ENV, f"passphrase for {directory}/log.key")
    return Registry.open(directory, passphrase=passphrase)


@registry.command("init")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--origin", default=None,
              help="The log's name in checkpoints (default: claimkit.local/<dir name>).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def registry_init(directory: str, origin: str | None, as_json: bool) -> None:
    """Create a registry in DIRECTORY: registry.db, log.key (encrypted), log.vkey, time.vkey.

    The log key's passphrase comes from CLAIMKIT_LOG_PASSPHRASE or a prompt.

    Example: claimkit registry init ./registry --origin example.org/claimkit
    """
    from .registry.log import Registry
    origin = origin or f"claimkit.local/{Path(directory).resolve().name}"
    passphrase = _passphrase(LOG_PASSPHRASE_ENV, f"new passphrase for {directory}/log.key",
                             confirm=True)
    with Registry.init(directory, origin=origin, passphrase=passphrase) as reg:
        vkey = reg.log_key.to_vkey()
    _emit(as_json, {"directory": directory, "origin": origin, "vkey": vkey},
          f"registry {origin} created in {directory}\nverifier key: {vkey}")


@registry.command("checkpoint")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print size, root and the note as JSON.")
def registry_checkpoint(directory: str, as_json: bool) -> None:
    """Print the latest signed checkpoint (a C2SP signed note).

    Example: claimkit registry checkpoint ./registry > checkpoint.txt
    """
    with _open_registry(directory) as reg:
        signed = reg.latest_checkpoint()
    text = signed.to_bytes().decode()
    cp = signed.checkpoint
    if as_json:
        _emit(True, {"origin": cp.origin, "size": cp.size, "root_hash": cp.root_hash.hex(),
                     "note": text}, "")
    else:
        click.echo(text, nl=False)


@registry.command("audit")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the audit report as JSON.")
def registry_audit(directory: str, as_json: bool) -> None:
    """Recompute the whole log and check every entry, node, checkpoint and claim.

    Exit 0 when everything holds, 1 with the list of problems otherwise.

    Example: claimkit registry audit ./registry
    """
    from tqdm import tqdm
    with _open_registry(directory) as reg:
        with tqdm(total=reg.size, unit="entry", disable=None, file=sys.stderr,
                  desc="audit") as bar:
            report = reg.audit(progress=lambda n: bar.update(n - bar.n))
    lines = [f"{'ok' if report.ok else 'FAILED'}: {report.size} entries "
             f"({report.registrations} registrations, {report.claims} claims), "
             f"{report.checkpoints} checkpoints, root {report.root_hash.hex()}"]
    lines += [f"  problem: {p}" for p in report.problems]
    _emit(as_json, report.to_dict(), "\n".join(lines))
    sys.exit(EXIT_OK if report.ok else EXIT_REJECTED)


@registry.command("receipt")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.argument("index", type=click.IntRange(min=0))
@click.option("--size", type=click.IntRange(min=1), default=None,
              help="Prove against the checkpoint of this size (default: the latest).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Receipt file to write.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def registry_receipt(directory: str, index: int, size: int | None, out: str, as_json: bool) -> None:
    """Write a fresh receipt for entry INDEX, e.g. to carry the witnesses' cosignatures
    gathered since registration (what `verify --witness-key` checks).

    Example: claimkit registry receipt ./registry 4 --out receipt.json
    """
    from .wire import atomic_write
    with _open_registry(directory) as reg:
        receipt = reg.receipt(index, size)
    atomic_write(out, receipt.to_json())
    signers = [s.name for s in receipt.proof.checkpoint.note.signatures]
    _emit(as_json, {"receipt": out, "index": index, "size": receipt.checkpoint.size,
                    "signatures": signers},
          f"receipt for entry {index} under the checkpoint of size {receipt.checkpoint.size} "
          f"(signed by {', '.join(signers)}) written to {out}")


@registry.command("cosign")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--identity", "identity_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The witness's key file (from `claimkit keys new`).")
@click.option("--state", "state_path", required=True, type=click.Path(dir_okay=False),
              help="The witness's memory of the checkpoints it has seen (created if absent).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def registry_cosign(directory: str, identity_path: str, state_path: str, as_json: bool) -> None:
    """Witness the latest checkpoint: check it is consistent with the last one this
    witness saw, then add a timestamped cosignature (C2SP tlog-cosignature).

    A fork or rollback is refused with exit 1; both signed checkpoints, the evidence of
    the log's misbehaviour, are written to STATE.evidence.

    Example: claimkit registry cosign ./registry --identity arbiter.key --state arbiter.seen
    """
    from .errors import InconsistentLogError
    from .registry.witness import Witness
    from .wire import atomic_write
    identity = _load_identity(identity_path)
    with _open_registry(directory) as reg:
        witness = Witness(identity, state_path)
        try:
            cosigned = witness.cosign(reg.latest_checkpoint(), reg.log_key, reg.consistency_proof)
        except InconsistentLogError as e:
            evidence = f"{state_path}.evidence"
            atomic_write(evidence, (f"# {e}\n# seen before:\n{e.seen}\n"
                                    f"# presented now:\n{e.presented}").encode())
            raise InconsistentLogError(f"{e} (both checkpoints written to {evidence})") from None
        reg.add_cosignature(cosigned)
    cp = cosigned.checkpoint
    _emit(as_json, {"origin": cp.origin, "size": cp.size, "witness": witness.verifier_key.to_vkey()},
          f"cosigned {cp.origin} at size {cp.size} as {witness.verifier_key.to_vkey()}")


# -- owner: keys, models, marking -----------------------------------------------------
DATA_CHOICES = click.Choice(["digits", "fashion-mnist", "mnist"])
_data_option = click.option("--data", required=True, type=DATA_CHOICES,
                            help="Data set: the embedded digits, or an IDX set from disk.")
_root_option = click.option("--data-root", type=click.Path(file_okay=False), default=None,
                            help="Folder of the IDX files (default for fashion-mnist: Debian's package).")
_device_option = click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")


@cli.command("keygen")
@click.option("--scheme", type=click.Choice(["trigger-set"]), default="trigger-set", show_default=True,
              help="The watermarking scheme (more arrive with their backends).")
@_data_option
@_root_option
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Key directory: marking-key (secret, sealed, 0600) and verification-key.json.")
@click.option("--items", default=100, show_default=True, type=click.IntRange(2, 100_000),
              help="Committed items ℓ (trigger images).")
@click.option("--alpha", default=1e-4, show_default=True, type=click.FloatRange(1e-12, 0.5),
              help="Level of the ownership test, fixed in the public key before release.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def keygen_command(scheme: str, data: str, data_root: str | None, out: str, items: int,
                   alpha: float, as_json: bool) -> None:
    """Make a marking key (secret) and its verification key (public) for DATA.

    The passphrase sealing the marking key comes from CLAIMKIT_PASSPHRASE or a prompt.

    Example: claimkit keygen --scheme trigger-set --data digits --out keys/
    """
    from .ml.data import load_dataset
    from .schemes.trigger_set import TriggerSetParams, keygen
    dataset = load_dataset(data, root=data_root)
    params = TriggerSetParams(dataset.num_classes, dataset.input_shape, items=items, alpha=alpha,
                              data=dataset.name, data_digest=dataset.digest.hex)
    mk = keygen(params)
    mk.save(out, _passphrase(PASSPHRASE_ENV, f"new passphrase for {out}/marking-key", confirm=True))
    vk = mk.verification_key
    _emit(as_json, {"keydir": out, "scheme": scheme, "items": vk.items, "verification_key": vk.digest.to_dict()},
          f"wrote {out}/marking-key (secret) and {out}/verification-key.json; "
          f"register it before release: claimkit register {out} --registry DIR --identity KEY --out receipt.json")


@cli.command("train")
@_data_option
@_root_option
@click.option("--arch", default=None, help="Architecture (default: the data set's recipe).")
@click.option("--epochs", type=click.IntRange(0), default=None, help="Default: the recipe's.")
@click.option("--seed", default=0, show_default=True, help="Initial weights and data order.")
@_device_option
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="model.safetensors to write.")
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON.")
def train_command(data: str, data_root: str | None, arch: str | None, epochs: int | None, seed: int,
                  device: str, out: str, as_json: bool) -> None:
    """Train a clean model (an independent or suspect model); the run record goes beside it.

    Example: claimkit train --data digits --seed 3 --out independent.safetensors
    """
    from .ml.data import load_dataset
    from .ml.jobs import fit_and_save
    digest, record = fit_and_save(load_dataset(data, root=data_root), out, arch=arch,
                                  epochs=epochs, seed=seed, device=device)
    _emit(as_json, record.to_dict(), f"wrote {out} (weights {digest.hex[:16]}): test accuracy "
          f"{record.test_accuracy:.4f} in {record.wall_seconds:.1f} s on {record.device}")


@cli.command("mark")
@click.argument("keydir", type=click.Path(exists=True, file_okay=False))
@_data_option
@_root_option
@click.option("--arch", default=None, help="Architecture (default: the data set's recipe).")
@click.option("--from", "start_from", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Fine-tune this trained model (PreTrained) instead of training from scratch.")
@click.option("--epochs", type=click.IntRange(0), default=None, help="Default: the recipe's.")
@click.option("--seed", default=0, show_default=True, help="Initial weights and data order.")
@_device_option
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="model.safetensors to write.")
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON.")
def mark_command(keydir: str, data: str, data_root: str | None, arch: str | None,
                 start_from: str | None, epochs: int | None, seed: int, device: str, out: str,
                 as_json: bool) -> None:
    """Train a model that carries KEYDIR's watermark (Adi et al.: FromScratch, or PreTrained
    with --from), with the triggers in every batch.

    Example: claimkit mark keys/ --data digits --out released.safetensors
    """
    from .ml.data import load_dataset
    from .ml.jobs import fit_and_save
    from .protocol.keys import MarkingKey
    from .schemes.trigger_set import trigger_images
    mk = MarkingKey.load(keydir, _passphrase(PASSPHRASE_ENV, f"passphrase for {keydir}/marking-key"))
    dataset = load_dataset(data, root=data_root)
    if mk.params.get("data_digest") not in (None, "", dataset.digest.hex):
        from .errors import MalformedInputError
        raise MalformedInputError(f"{keydir} was made for other data than {data} (data digest differs)")
    digest, record = fit_and_save(dataset, out, arch=arch, epochs=epochs, seed=seed, device=device,
                                  triggers=trigger_images(mk), start_from=start_from)
    _emit(as_json, record.to_dict(), f"wrote {out} (weights {digest.hex[:16]}): test accuracy "
          f"{record.test_accuracy:.4f}, trigger accuracy {record.trigger_accuracy:.4f}, "
          f"{record.wall_seconds:.1f} s on {record.device}")


@cli.command("claim")
@click.argument("keydir", type=click.Path(exists=True, file_okay=False))
@click.option("--receipt", "receipt_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The registration receipt of KEYDIR's verification key.")
@click.option("--registry", "registry_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The registry that logged it (the claim's intent is announced there).")
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The suspect model (safetensors).")
@click.option("--arch", default=None, help="The architecture the file must hold.")
@click.option("--identity", "identity_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The owner's key file (the one that registered).")
@click.option("--open", "k", default=50, show_default=True, type=click.IntRange(1),
              help="Committed items this claim opens (the challenge picks which).")
@_device_option
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Bundle file to write.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def claim_command(keydir: str, receipt_path: str, registry_dir: str, model_path: str, arch: str | None,
                  identity_path: str, k: int, device: str, out: str, as_json: bool) -> None:
    """Claim a suspect model: announce the claim in the registry, open the challenged items,
    query the model, and write a signed claim bundle for an arbiter.

    Example: claimkit claim keys/ --receipt receipt.json --registry reg/ --model suspect.safetensors --identity owner.key --out bundle.json
    """
    from .claim.make import make_claim
    from .ml.oracle import LocalModel
    from .protocol.keys import MarkingKey
    from .registry.receipt import Receipt
    from .schemes.trigger_set import answerer
    from .wire import atomic_write
    mk = MarkingKey.load(keydir, _passphrase(PASSPHRASE_ENV, f"passphrase for {keydir}/marking-key"))
    identity = _load_identity(identity_path)
    oracle = LocalModel.from_file(model_path, arch=arch, device=device)
    vk = mk.verification_key
    with _open_registry(registry_dir, write=True) as reg:
        bundle = make_claim(reg, mk, Receipt.from_file(receipt_path), oracle.info.digest, k=k,
                            identity=identity, ask=answerer(oracle.labels, vk))
    atomic_write(out, bundle.to_json())
    details = bundle.predicate.evidence.get("details", {})
    _emit(as_json, {"bundle": out, "suspect": oracle.info.digest.to_dict(), **details},
          f"wrote {out}: {details.get('matches')}/{details.get('n')} opened items match "
          f"(the owner's observation; an arbiter re-checks with claimkit verify)")


# -- owner: register ----------------------------------------------------------------------
@cli.command("register")
@click.argument("keydir", type=click.Path(exists=True, file_okay=False))
@click.option("--registry", "registry_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The registry directory (a local log).")
@click.option("--identity", "identity_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The owner's key file.")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False),
              help="The model about to be released (safetensors): its weights digest is bound too.")
@click.option("--subject-digest", default=None, metavar="HEX",
              help="Or the SHA-256 of the model or dataset about to be released.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Receipt file to write.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def register(keydir: str, registry_dir: str, identity_path: str, model_path: str | None,
             subject_digest: str | None, out: str, as_json: bool) -> None:
    """Register KEYDIR's verification key in the registry, before release.

    Writes a receipt (the entry, its inclusion proof and the signed, timestamped
    checkpoint) that anyone can check offline against the registry's log.vkey.

    Example: claimkit register keys/ --registry ./registry --identity owner.key --out receipt.json
    """
    from .protocol.keys import VK_FILE, VerificationKey
    from .registry.entries import Registration, sign_request
    from .wire import Digest, atomic_write
    from .errors import MalformedInputError
    vk = VerificationKey.from_file(Path(keydir) / VK_FILE)
    subject = None
    if model_path is not None and subject_digest is not None:
        raise MalformedInputError("give --model or --subject-digest, not both")
    if model_path is not None:
        from .weights import weights_digest
        subject = weights_digest(model_path)
    if subject_digest is not None:
        try:
            subject = Digest(bytes.fromhex(subject_digest))
        except ValueError:
            raise MalformedInputError("--subject-digest: expected 64 hex digits") from None
    identity = _load_identity(identity_path)
    request = Registration(identity.public, vk.scheme, vk.digest, vk.items, subject)
    with _open_registry(registry_dir, write=True) as reg:
        receipt = reg.register(request, sign_request(request, identity))
    atomic_write(out, receipt.to_json())
    _emit(as_json, {"receipt": out, "index": receipt.index, "time_ms": receipt.entry.time_ms,
                    "origin": receipt.checkpoint.origin,
                    "subject": None if subject is None else subject.to_dict()},
          f"registered as entry {receipt.index} of {receipt.checkpoint.origin} "
          f"at {receipt.entry.time_ms} ms; receipt written to {out}")


# -- arbiter: verify ----------------------------------------------------------------------
def _model_oracle(model_path: str, arch: str | None, bundle: Any) -> tuple[Any, Any]:
    """(suspect digest, answer function) from a local model, for re-querying (torch)."""
    from .errors import MalformedInputError
    from .ml.oracle import LocalModel
    vk = bundle.predicate.verification_key
    if vk.scheme != "trigger-set":
        raise MalformedInputError(f"re-querying a model is not available for {vk.scheme} yet")
    from .schemes.trigger_set import answerer
    oracle = LocalModel.from_file(model_path, arch=arch)
    return oracle.info.digest, answerer(oracle.labels, vk)


@cli.command("verify")
@click.argument("bundle_paths", metavar="BUNDLE...", nargs=-1, required=True,
                type=click.Path(dir_okay=False))
@click.option("--registry-key", "registry_key", type=click.Path(dir_okay=False),
              envvar="CLAIMKIT_REGISTRY_KEY",
              help="The registry's log.vkey (or CLAIMKIT_REGISTRY_KEY). Required.")
@click.option("--witness-key", "witness_keys", multiple=True, type=click.Path(dir_okay=False),
              help="A witness's vkey that must have cosigned the registration (repeatable).")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False),
              help="The suspect model (safetensors): check it is the bundle's subject and "
                   "re-query it; the arbiter's own answers then decide.")
@click.option("--arch", default=None, help="With --model: the architecture the file must hold.")
@click.option("--sign-verdict", "verdict_key", type=click.Path(exists=True, dir_okay=False),
              help="Sign a verdict per bundle with this arbiter key file.")
@click.option("--verdict-out", type=click.Path(dir_okay=False),
              help="Where to write the signed verdict (one bundle; default BUNDLE.verdict.json).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(bundle_paths: tuple[str, ...], registry_key: str | None, witness_keys: tuple[str, ...],
           model_path: str | None, arch: str | None, verdict_key: str | None,
           verdict_out: str | None, as_json: bool) -> None:
    """Check claim bundles offline and recompute their statistics.

    With several bundles about one model (competing claims), the accepted claim with
    the earliest registration is named the winner.

    Exit 0: a claim is accepted. Exit 1: rejected (a failed check, or statistics that
    do not support ownership). Exit 2: malformed bundle or arguments.

    Example: claimkit verify bundle.json --registry-key registry/log.vkey --model suspect.safetensors
    """
    from .claim.bundle import ClaimBundle
    from .claim.verify import verify_claim
    from .errors import MalformedInputError, VerificationError
    from .registry.receipt import load_vkey
    if registry_key is None:
        raise MalformedInputError("--registry-key is required: the registry's log.vkey you trust")
    if verdict_out is not None and len(bundle_paths) != 1:
        raise MalformedInputError("--verdict-out takes one bundle; verdicts of several go beside them")
    log_key = load_vkey(registry_key)
    witnesses = [load_vkey(p) for p in witness_keys]
    arbiter = _load_identity(verdict_key) if verdict_key is not None else None
    results: list[dict[str, Any]] = []
    reports = []
    lines = []
    for path in bundle_paths:
        bundle = ClaimBundle.from_file(path)
        suspect = oracle = None
        if model_path is not None:
            suspect, oracle = _model_oracle(model_path, arch, bundle)
        report, reasons = None, ()
        try:
            report = verify_claim(bundle, log_key=log_key, witness_keys=witnesses,
                                  oracle=oracle, suspect=suspect)
            reports.append(report)
        except VerificationError as e:
            reasons = (str(e),)
        if arbiter is not None:
            from .claim.verdict import make_verdict
            from .wire import atomic_write
            target = verdict_out or str(Path(path).with_suffix(".verdict.json"))
            atomic_write(target, make_verdict(bundle, report, arbiter, reasons=reasons).to_json())
        if report is None:
            results.append({"bundle": path, "decision": "reject", "reasons": list(reasons)})
            lines.append(f"REJECTED {path}: {reasons[0]}")
            continue
        results.append({"bundle": path, **report.to_dict()})
        result = report.evidence.result
        lines.append(
            f"{'ACCEPTED' if report.accepted else 'REJECTED'} {path}: {report.scheme} claim by "
            f"{report.owner.name} ({report.owner.key_id[:16]}) on {report.suspect.hex[:16]}\n"
            f"  registered: entry {report.registration_index} of {report.origin} at "
            f"{report.registration_time_ms} ms; claim intent entry {report.intent_index}\n"
            f"  opened {len(report.opened)} items; {result.test} test: p = {result.p_value:.3g} "
            f"(alpha {result.alpha:g}), answers observed by the {report.observer}")
    accepted = [r for r in reports if r.accepted]
    out: dict[str, Any] = {"bundles": results} if len(bundle_paths) > 1 else results[0]
    if len(bundle_paths) > 1 and accepted:
        from .claim.compete import rank_claims
        first = rank_claims(accepted)[0]
        out["earliest_registration"] = {"owner": first.owner.name, "key_id": first.owner.key_id,
                                        "registration_index": first.registration_index}
        lines.append(f"earliest registration among the accepted claims: {first.owner.name} "
                     f"(entry {first.registration_index})")
    _emit(as_json, out, "\n".join(lines))
    sys.exit(EXIT_OK if accepted else EXIT_REJECTED)


# -- the whole story ----------------------------------------------------------------------
@cli.command("demo")
@click.option("--out", default="claimkit-demo", show_default=True, type=click.Path(file_okay=False),
              help="Where every artifact goes (must be new or empty).")
@click.option("--data", type=click.Choice(["digits", "fashion-mnist", "mnist"]), default="digits",
              show_default=True, help="Data set: the embedded digits, or a real one from disk.")
@click.option("--data-root", type=click.Path(file_okay=False), default=None,
              help="Folder of the IDX files (default for fashion-mnist: Debian's package).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--seed", default=0, show_default=True, help="Training seed.")
def demo(out: str, data: str, data_root: str | None, device: str, seed: int) -> None:
    """Run the whole story: owner keygen, register, mark, release; a thief fine-tunes the
    model and registers his own trigger set; the owner claims; an arbiter verifies; a claim
    on an independent model is rejected; the earliest registration wins.

    Exit 0 when every step ends as it should, 1 otherwise.

    Example: claimkit demo --out demo-run
    """
    from .demo import DemoSettings, run_demo
    report = run_demo(out, DemoSettings(data=data, data_root=data_root, device=device, seed=seed),
                      say=click.echo)
    sys.exit(EXIT_OK if report.ok else EXIT_REJECTED)


def main() -> None:
    cli(prog_name="claimkit")


if __name__ == "__main__":
    main()
