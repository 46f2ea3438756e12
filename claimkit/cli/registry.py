"""`claimkit registry`: operate a local transparency log."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import EXIT_OK, EXIT_REJECTED
from .base import (
    LOG_PASSPHRASE_ENV,
    Group,
    PathParam,
    cli,
    emit,
    json_option,
    load_identity,
    open_registry,
    passphrase,
)


# -- registry -----------------------------------------------------------------------------
@cli.group(cls=Group)
def registry() -> None:
    """Operate a local registry: an append-only, signed transparency log."""



@registry.command("init")
@click.argument("directory", type=PathParam(file_okay=False))
@click.option("--origin", default=None,
              help="The log's name in checkpoints (default: claimkit.local/<dir name>).")
@json_option("Print the result as JSON.")
def registry_init(directory: str, origin: str | None, as_json: bool) -> None:
    """Create a registry in DIRECTORY: registry.db, log.key (encrypted), log.vkey, time.vkey.

    The log key's passphrase comes from CLAIMKIT_LOG_PASSPHRASE or a prompt.

    Example: claimkit registry init ./registry --origin example.org/claimkit
    """
    from ..registry.log import Registry
    origin = origin or f"claimkit.local/{Path(directory).resolve().name}"
    phrase = passphrase(LOG_PASSPHRASE_ENV, f"new passphrase for {directory}/log.key",
                        confirm=True)
    with Registry.init(directory, origin=origin, passphrase=phrase) as reg:
        vkey = reg.log_key.to_vkey()
    emit(as_json, {"directory": directory, "origin": origin, "vkey": vkey},
          f"registry {origin} created in {directory}\nverifier key: {vkey}")


@registry.command("checkpoint")
@click.argument("directory", type=PathParam(exists=True, file_okay=False))
@json_option("Print size, root and the note as JSON.")
def registry_checkpoint(directory: str, as_json: bool) -> None:
    """Print the latest signed checkpoint (a C2SP signed note).

    Example: claimkit registry checkpoint ./registry > checkpoint.txt
    """
    with open_registry(directory) as reg:
        signed = reg.latest_checkpoint()
    text = signed.to_bytes().decode()
    cp = signed.checkpoint
    if as_json:
        emit(True, {"origin": cp.origin, "size": cp.size, "root_hash": cp.root_hash.hex(),
                     "note": text}, "")
    else:
        click.echo(text, nl=False)


@registry.command("audit")
@click.argument("directory", type=PathParam(exists=True, file_okay=False))
@json_option("Print the audit report as JSON.")
def registry_audit(directory: str, as_json: bool) -> None:
    """Recompute the whole log and check every entry, node, checkpoint, claim and draw.

    Exit 0 when everything holds, 1 with the list of problems otherwise.

    Example: claimkit registry audit ./registry
    """
    from tqdm import tqdm
    with open_registry(directory) as reg, tqdm(total=reg.size, unit="entry", disable=None,
                                               file=sys.stderr, desc="audit") as bar:
        report = reg.audit(progress=lambda n: bar.update(n - bar.n))
    lines = [(f"{'ok' if report.ok else 'FAILED'}: {report.size} entries "
              f"({report.registrations} registrations, {report.claims} claims, "
              f"{report.draws} trigger draws), "
              f"{report.checkpoints} checkpoints, root {report.root_hash.hex()}")]
    lines += [f"  problem: {p}" for p in report.problems]
    emit(as_json, report.to_dict(), "\n".join(lines))
    sys.exit(EXIT_OK if report.ok else EXIT_REJECTED)


@registry.command("receipt")
@click.argument("directory", type=PathParam(exists=True, file_okay=False))
@click.argument("index", type=click.IntRange(min=0))
@click.option("--size", type=click.IntRange(min=1), default=None,
              help="Prove against the checkpoint of this size (default: the latest).")
@click.option("--out", required=True, type=PathParam(dir_okay=False), help="Receipt file to write.")
@json_option("Print the result as JSON.")
def registry_receipt(directory: str, index: int, size: int | None, out: str, as_json: bool) -> None:
    """Write a fresh receipt for entry INDEX, e.g. to carry the witnesses' cosignatures
    gathered since registration (what `verify --witness-key` checks).

    Example: claimkit registry receipt ./registry 4 --out receipt.json
    """
    from ..wire import atomic_write
    with open_registry(directory) as reg:
        receipt = reg.receipt(index, size)
    atomic_write(out, receipt.to_json())
    signers = [s.name for s in receipt.proof.checkpoint.note.signatures]
    emit(as_json, {"receipt": out, "index": index, "size": receipt.checkpoint.size,
                    "signatures": signers},
          f"receipt for entry {index} under the checkpoint of size {receipt.checkpoint.size} "
          f"(signed by {', '.join(signers)}) written to {out}")


@registry.command("cosign")
@click.argument("directory", type=PathParam(exists=True, file_okay=False))
@click.option("--identity", "identity_path", required=True, type=PathParam(exists=True, dir_okay=False),
              help="The witness's key file (from `claimkit keys new`).")
@click.option("--state", "state_path", required=True, type=PathParam(dir_okay=False),
              help="The witness's memory of the checkpoints it has seen (created if absent).")
@json_option("Print the result as JSON.")
def registry_cosign(directory: str, identity_path: str, state_path: str, as_json: bool) -> None:
    """Witness the latest checkpoint: check it is consistent with the last one this
    witness saw, then add a timestamped cosignature (C2SP tlog-cosignature).

    A fork or rollback is refused with exit 1; both signed checkpoints, the evidence of
    the log's misbehaviour, are written to STATE.evidence (still exit 1 if that write fails).
    Damaged registry storage is exit 1 with no evidence: run `claimkit registry audit`.

    Example: claimkit registry cosign ./registry --identity arbiter.key --state arbiter.seen
    """
    from ..errors import InconsistentLogError
    from ..registry.witness import Witness
    from ..wire import atomic_write
    identity = load_identity(identity_path)
    with open_registry(directory) as reg:
        witness = Witness(identity, state_path)
        try:
            # the head is read under the state's lock (two runs at once: no false rollback)
            cosigned = witness.cosign(reg.latest_checkpoint, reg.log_key, reg.consistency_proof)
        except InconsistentLogError as e:
            evidence = f"{state_path}.evidence"
            try:    # a failed write must not turn the alarm into an I/O error (exit 2)
                atomic_write(evidence, (f"# {e}\n# seen before:\n{e.seen}\n"
                                        f"# presented now:\n{e.presented}").encode())
                where = f"both checkpoints written to {evidence}"
            except OSError as w:
                where = f"writing the evidence to {evidence} failed: {w.strerror or w}"
            raise InconsistentLogError(f"{e} ({where})") from None
        reg.add_cosignature(cosigned, witness.verifier_key)
    cp = cosigned.checkpoint
    emit(as_json, {"origin": cp.origin, "size": cp.size, "witness": witness.verifier_key.to_vkey()},
          f"cosigned {cp.origin} at size {cp.size} as {witness.verifier_key.to_vkey()}")
