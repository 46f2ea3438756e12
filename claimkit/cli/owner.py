"""The owner's commands: keygen, train, mark, register, claim."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import ClaimkitError, MalformedInputError, RegistryError
from ..ml import MAX_EPOCHS, MAX_SEED
from ..schemes.base import MarkOptions, backend_names, get_backend
from .base import (
    PASSPHRASE_ENV,
    PathParam,
    arch_option,
    check_out,
    cli,
    data_option,
    device_option,
    emit,
    json_option,
    load_identity,
    open_registry,
    passphrase,
    root_option,
)
from .suspect import suspect_options

# -- owner: keys, models, marking -----------------------------------------------------


def _params(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise MalformedInputError(f"--param {item!r}: expected KEY=VALUE")
        if key.strip() in out:
            raise MalformedInputError(f"--param {key.strip()}: given twice")
        out[key.strip()] = value.strip()
    return out


def _load_key(keydir: str) -> Any:
    from ..protocol.keys import MarkingKey
    return MarkingKey.load(keydir, passphrase(PASSPHRASE_ENV, f"passphrase for {keydir}/marking-key"))


@cli.command("keygen")
@click.option("--scheme", type=click.Choice(backend_names()), default="trigger-set",
              show_default=True, help="The watermarking scheme.")
@data_option
@root_option
@click.option("--out", required=True, type=PathParam(file_okay=False),
              help="Key directory: marking-key (secret, sealed, 0600) and verification-key.json.")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="A scheme parameter (repeatable), e.g. -p items=100 -p alpha=1e-4 for "
                   "trigger-set; an unknown key lists the settable ones.")
@json_option("Print the result as JSON.")
def keygen_command(scheme: str, data: str, data_root: str | None, out: str,
                   params: tuple[str, ...], as_json: bool) -> None:
    """Make a marking key (secret) and its verification key (public) for DATA.

    The passphrase sealing the marking key comes from CLAIMKIT_PASSPHRASE or a prompt.

    Example: claimkit keygen --scheme trigger-set --data digits -p items=100 --out keys/
    """
    from ..ml.data import load_dataset
    mk = get_backend(scheme).keygen(load_dataset(data, root=data_root), _params(params))
    mk.save(out, passphrase(PASSPHRASE_ENV, f"new passphrase for {out}/marking-key", confirm=True))
    vk = mk.verification_key
    nxt = (f"draw its trigger from the log, then mark and register before release: claimkit "
           f"draw {out} --registry DIR --identity KEY" if "trigger_commitment" in vk.params else
           f"register it before release: claimkit register {out} --registry DIR --identity KEY "
           f"--out receipt.json")
    emit(as_json, {"keydir": out, "scheme": scheme, "items": vk.items, "params": vk.params,
                   "verification_key": vk.digest.to_dict()},
         f"wrote {out}/marking-key (secret; {vk.items} committed items) and "
         f"{out}/verification-key.json; {nxt}")


@cli.command("train")
@data_option
@root_option
@arch_option("Architecture (default: the data set's recipe).")
@click.option("--epochs", type=click.IntRange(0, MAX_EPOCHS), default=None,
              help="Default: the recipe's.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, MAX_SEED),
              help="Initial weights and data order.")
@device_option
@click.option("--out", required=True, type=PathParam(dir_okay=False), help="model.safetensors to write.")
@json_option("Print the run record as JSON.")
def train_command(data: str, data_root: str | None, arch: str | None, epochs: int | None, seed: int,
                  device: str, out: str, as_json: bool) -> None:
    """Train a clean model (an independent or suspect model); the run record goes beside it.

    Example: claimkit train --data digits --seed 3 --out independent.safetensors
    """
    from ..ml.data import load_dataset
    from ..ml.jobs import fit_and_save
    check_out(out)                  # before training, not after it
    digest, record = fit_and_save(load_dataset(data, root=data_root), out, arch=arch,
                                  epochs=epochs, seed=seed, device=device)
    emit(as_json, record.to_dict(), f"wrote {out} (weights {digest.hex[:16]}): test accuracy "
          f"{record.test_accuracy:.4f} in {record.wall_seconds:.1f} s on {record.device}")


@cli.command("mark")
@click.argument("keydir", type=PathParam(exists=True, file_okay=False))
@data_option
@root_option
@arch_option("Architecture (default: the data set's recipe).")
@click.option("--from", "start_from", type=PathParam(exists=True, dir_okay=False), default=None,
              help="Fine-tune this trained model (PreTrained) instead of training from scratch.")
@click.option("--epochs", type=click.IntRange(0, MAX_EPOCHS), default=None,
              help="Default: the recipe's.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, MAX_SEED),
              help="Initial weights and data order.")
@device_option
@click.option("--out", required=True, type=PathParam(dir_okay=False),
              help="model.safetensors to write, or a new folder for a dataset scheme's release.")
@json_option("Print the run record as JSON.")
def mark_command(keydir: str, data: str, data_root: str | None, arch: str | None,
                 start_from: str | None, epochs: int | None, seed: int, device: str, out: str,
                 as_json: bool) -> None:
    """Mark with KEYDIR's key: train a model that carries the watermark (trigger-set:
    FromScratch, or PreTrained with --from), or write a watermarked data set (dataset
    schemes), as the key's scheme does.

    Example: claimkit mark keys/ --data digits --out released.safetensors
    """
    from ..ml.data import load_dataset
    if Path(out).suffix == ".safetensors":          # a model (a data set goes to a folder)
        check_out(out, inputs=(start_from,))
    mk = _load_key(keydir)
    dataset = load_dataset(data, root=data_root)
    if mk.params.get("data_digest") not in (None, "", dataset.digest.hex):
        raise MalformedInputError(f"{keydir} was made for other data than {data} (data digest differs)")
    record = get_backend(mk.scheme).mark(mk, dataset, out, MarkOptions(
        arch=arch, epochs=epochs, seed=seed, device=device, start_from=start_from))
    if "dataset_digest" in record:   # a dataset scheme wrote a release folder (ml.release)
        emit(as_json, record, f"wrote the release {out}/ ({record['train_images']} training images, "
             f"{record['poisoned']} of them marked"
             + (f", {record['decoys']} decoys" if record.get("decoys") else "")
             + f") in {record['wall_seconds']:.1f} s; dataset digest "
             f"{record['dataset_digest'][:16]}; register it before release: claimkit register "
             f"{keydir} --dataset {out} --registry DIR --identity KEY --out receipt.json"
             + _specificity_line(record, float(mk.params["tau"])))
        return
    trigger = record.get("trigger_accuracy")
    emit(as_json, record, f"wrote {out}: test accuracy {record.get('test_accuracy', 0):.4f}"
         + (f", trigger accuracy {trigger:.4f}" if trigger is not None else "")
         + f", {record.get('wall_seconds', 0):.1f} s on {record.get('device')}")


def _specificity_line(record: dict[str, Any], tau: float) -> str:
    """UBW-C's last surrogate (trained on the poisons) as an early look at what the release
    teaches: a suspect that loses as much under any trigger as under the key's gives
    Prop. 1 no way to tell this owner's claim from another's, and one that loses no more
    than τ under the key's gives the owner's own claim little to stand on. At CPU scale
    every release whose last surrogate lost no more than τ under the key's trigger failed
    its owner's claim (docs/benchmarks.md, "Which classes take a UBW-C release"), so the
    owner hears it before releasing, when a new key costs nothing."""
    gaps = record.get("surrogate_gaps") or []
    if len(gaps) < 2 or "any_other" not in gaps[-1]:
        return ""
    last = gaps[-1]
    source = f"class {record['source']}" if "source" in record else "the source class"
    line = (f"\nthe last surrogate loses {last['key']:.2f} of {source}'s probability "
            f"under the key's trigger and {last['any_other']:.2f} under other triggers of its "
            f"kind (a release specific to its key keeps the second far below the first)")
    if last["key"] <= tau:
        line += (f"\nwarning: not more than the key's margin τ = {tau:g}: a suspect trained on "
                 f"this release may lose too little for a claim to pass; consider a new key "
                 f"(another seed or -p source) before releasing")
    return line


@cli.command("claim")
@click.argument("keydir", type=PathParam(exists=True, file_okay=False))
@click.option("--receipt", "receipt_path", required=True, type=PathParam(exists=True, dir_okay=False),
              help="The registration receipt of KEYDIR's verification key.")
@click.option("--registry", "registry_dir", required=True, type=PathParam(exists=True, file_okay=False),
              help="The registry that logged it (the claim's intent is announced there).")
@suspect_options
@click.option("--identity", "identity_path", required=True, type=PathParam(exists=True, dir_okay=False),
              help="The owner's key file (the one that registered).")
@click.option("--open", "k", default=None, type=click.IntRange(1),
              help="Committed items this claim opens (the challenge picks which; "
                   "default: UBW's m; otherwise 50, or the key's minimum if larger).")
@device_option
@click.option("--out", required=True, type=PathParam(dir_okay=False), help="Bundle file to write.")
@json_option("Print the result as JSON.")
def claim_command(keydir: str, receipt_path: str, registry_dir: str, model_path: str | None,
                  arch: str | None, onnx_path: str | None, endpoint: str | None, timeout: float,
                  identity_path: str, k: int | None, device: str, out: str, as_json: bool) -> None:
    """Claim a suspect model: announce the claim in the registry, open the challenged items,
    query the model, and write a signed claim bundle for an arbiter. The suspect is one
    of --model, --onnx or --endpoint; an endpoint is asked what it takes before the claim
    is announced.

    Example: claimkit claim keys/ --receipt receipt.json --registry reg/ --model suspect.safetensors --identity owner.key --out bundle.json
    """
    from ..claim.make import check_claim_size, default_open, make_claim
    from ..ml.oracle import open_oracle
    from ..registry.receipt import Receipt
    from ..wire import atomic_write
    check_out(out, replace=False)   # the bundle is the only record of the items it spends
    mk = _load_key(keydir)
    k = default_open(mk.verification_key) if k is None else k
    check_claim_size(mk, k)     # before the suspect is reached (make_claim asks again)
    identity = load_identity(identity_path)
    oracle = open_oracle(model=model_path, onnx=onnx_path, endpoint=endpoint, arch=arch,
                         device=device, timeout=timeout)
    ask = get_backend(mk.scheme).answerer(oracle, mk.verification_key)
    with open_registry(registry_dir, write=True) as reg:
        bundle = make_claim(reg, mk, Receipt.from_file(receipt_path), oracle.subject, k=k,
                            identity=identity, ask=ask, subject_name=oracle.name)
    atomic_write(out, bundle.to_json())
    evidence = bundle.predicate.evidence
    result = evidence.get("result", {})
    emit(as_json, {"bundle": out, "suspect": oracle.subject.to_dict(), **evidence.get("details", {}),
                   "p_value": result.get("p_value"), "decision": evidence.get("decision")},
         f"wrote {out}: {evidence.get('decision')} at p = {result.get('p_value', float('nan')):.3g} "
         f"(the owner's observation; an arbiter re-checks with claimkit verify)")


# -- owner: draw --------------------------------------------------------------------------
DRAW_FILE = "trigger-draw.json"


@cli.command("draw")
@click.argument("keydir", type=PathParam(exists=True, file_okay=False))
@click.option("--registry", "registry_dir", required=True, type=PathParam(exists=True, file_okay=False),
              help="The registry that logs the draw (the one the key will be registered in).")
@click.option("--identity", "identity_path", required=True, type=PathParam(exists=True, dir_okay=False),
              help="The owner's key file (the one that will register the key).")
@click.option("--receipt", "receipt_path", type=PathParam(exists=True, dir_okay=False),
              help="Complete the key from its draw already logged (its receipt, from claimkit "
                   "registry receipt DIR INDEX --size INDEX+1) instead of drawing.")
@json_option("Print the result as JSON.")
def draw_command(keydir: str, registry_dir: str, identity_path: str, receipt_path: str | None,
                 as_json: bool) -> None:
    """Draw the trigger of KEYDIR's key from the registry log (a UBW-C key made with
    -p draw=log): log a signed trigger-draw entry naming the key, derive the trigger from
    the tree head that ends with it and the log's signature, and add it to the marking
    key. The registry draws a key once. The receipt goes to KEYDIR/trigger-draw.json
    first (a later run completes the key from it, should this one stop after the draw);
    then mark, and register before release.

    Example: claimkit draw keys/ --registry reg/ --identity owner.key
    """
    from ..claim.drawn import is_drawn
    from ..protocol.keys import MarkingKey
    from ..registry.entries import TriggerDraw, sign_request
    from ..registry.log import AlreadyDrawn
    from ..schemes.ubw import complete_draw
    from ..wire import atomic_write
    phrase = passphrase(PASSPHRASE_ENV, f"passphrase for {keydir}/marking-key")
    mk = MarkingKey.load(keydir, phrase)
    strength = MarkingKey.sealed_strength(keydir)    # sealed again no weaker than it was
    vk = mk.verification_key
    if not is_drawn(vk):
        raise MalformedInputError(f"{keydir}: this key's trigger is not drawn from the log "
                                  "(keygen --scheme ubw-c -p fresh=K -p draw=log makes one)")
    if "trigger" in mk.secret:
        raise MalformedInputError(f"{keydir}: the key's trigger was drawn already "
                                  f"({DRAW_FILE}); a key is drawn once")
    identity = load_identity(identity_path)
    kept = Path(keydir) / DRAW_FILE
    source = receipt_path or (str(kept) if kept.exists() else None)  # resume a stopped draw
    with open_registry(registry_dir, write=source is None) as reg:
        if source is None:
            request = TriggerDraw(identity.public, vk.scheme, vk.digest)
            try:
                receipt = reg.draw_trigger(request, sign_request(request, identity))
            except AlreadyDrawn as e:
                raise RegistryError(
                    f"{e}; if that draw was yours, complete the key from it: claimkit registry "
                    f"receipt {registry_dir} {e.index} --size {e.index + 1} --out draw.json, "
                    f"then claimkit draw {keydir} --registry {registry_dir} --identity "
                    f"{identity_path} --receipt draw.json") from None
            # The registry will not draw this key again: keep the receipt before all else.
            atomic_write(kept, receipt.to_json())
        else:
            receipt = _read_draw(source, vk, reg.log_key, identity.public, registry_dir)
        completed = complete_draw(mk, receipt, reg.log_key)
    completed.save(keydir, phrase, strength=strength, overwrite=True)
    if source != str(kept):
        atomic_write(kept, receipt.to_json())
    emit(as_json, {"keydir": keydir, "draw": str(kept), "index": receipt.index,
                   "time_ms": receipt.entry.time_ms},
         f"drew the trigger of {keydir} at entry {receipt.index} of "
         f"{receipt.checkpoint.origin}; receipt in {kept}; now mark, and register before "
         f"release: claimkit register {keydir} --dataset RELEASE --registry DIR --identity KEY "
         "--out receipt.json")


def _read_draw(path: str | Path, vk: Any, log_key: Any, owner: Any, registry_dir: str) -> Any:
    """The trigger-draw receipt at ``path``: a draw of ``vk`` in this registry by ``owner``,
    or a one-line error that names the file."""
    from ..claim.drawn import check_draw
    from ..registry.receipt import Receipt
    try:
        receipt = Receipt.from_file(path)
        check_draw(receipt, vk, log_key)
    except ClaimkitError as e:
        raise MalformedInputError(f"{path} is not this key's draw in {registry_dir} ({e})") from None
    # A key drawn by someone else can never support this owner's claim (a verifier
    # requires the registration's owner to have drawn it): refuse it before any release.
    drawer = receipt.entry.request.owner
    if drawer.public_key != owner.public_key:
        raise MalformedInputError(f"{path}: the key was drawn by {drawer.name} "
                                  f"({drawer.key_id}), not by {owner.name}; its claims would "
                                  "fail: make a new key")
    return receipt


# -- owner: register ----------------------------------------------------------------------
@cli.command("register")
@click.argument("keydir", type=PathParam(exists=True, file_okay=False))
@click.option("--registry", "registry_dir", required=True, type=PathParam(exists=True, file_okay=False),
              help="The registry directory (a local log).")
@click.option("--identity", "identity_path", required=True, type=PathParam(exists=True, dir_okay=False),
              help="The owner's key file.")
@click.option("--model", "model_path", type=PathParam(exists=True, dir_okay=False),
              help="The model about to be released (safetensors): its weights digest is bound too.")
@click.option("--dataset", "dataset_dir", type=PathParam(exists=True, file_okay=False),
              help="Or the released data set (a claimkit mark folder): its dataset digest is bound.")
@click.option("--subject-digest", default=None, metavar="HEX",
              help="Or the SHA-256 of the model or dataset about to be released.")
@click.option("--out", required=True, type=PathParam(dir_okay=False), help="Receipt file to write.")
@json_option("Print the result as JSON.")
def register(keydir: str, registry_dir: str, identity_path: str, model_path: str | None,
             dataset_dir: str | None, subject_digest: str | None, out: str, as_json: bool) -> None:
    """Register KEYDIR's verification key in the registry, before release.

    Writes a receipt (the entry, its inclusion proof and the signed, timestamped
    checkpoint) that anyone can check offline against the registry's log.vkey.

    Example: claimkit register keys/ --registry ./registry --identity owner.key --out receipt.json
    """
    from ..errors import MalformedInputError
    from ..protocol.keys import VK_FILE, VerificationKey
    from ..registry.entries import Registration, sign_request
    from ..wire import Digest, atomic_write
    check_out(out, replace=False)   # before the log has an entry this receipt must record
    vk = VerificationKey.from_file(Path(keydir) / VK_FILE)
    kept = Path(keydir) / DRAW_FILE
    if "trigger_commitment" in vk.params and not kept.exists():
        raise MalformedInputError(f"{keydir}: the key's trigger is drawn from the log and has "
                                  f"not been drawn; a verifier refuses a key registered before "
                                  f"its draw: claimkit draw {keydir} --registry DIR --identity KEY")
    subject = None
    if sum(v is not None for v in (model_path, dataset_dir, subject_digest)) > 1:
        raise MalformedInputError("give one of --model, --dataset, --subject-digest")
    if dataset_dir is not None:
        from ..ml.release import load_release
        subject = load_release(dataset_dir, marked_with=vk.digest).digest
    if model_path is not None:
        from ..weights import weights_digest
        subject = weights_digest(model_path)
    if subject_digest is not None:
        try:
            subject = Digest(bytes.fromhex(subject_digest))
        except ValueError:
            raise MalformedInputError("--subject-digest: expected 64 hex digits") from None
    identity = load_identity(identity_path)
    request = Registration(identity.public, vk.scheme, vk.digest, vk.items, subject)
    with open_registry(registry_dir, write=True) as reg:
        if "trigger_commitment" in vk.params:     # only a draw of this key, by this owner
            _read_draw(kept, vk, reg.log_key, identity.public, registry_dir)
        receipt = reg.register(request, sign_request(request, identity))
    atomic_write(out, receipt.to_json())
    emit(as_json, {"receipt": out, "index": receipt.index, "time_ms": receipt.entry.time_ms,
                    "origin": receipt.checkpoint.origin,
                    "subject": None if subject is None else subject.to_dict()},
          f"registered as entry {receipt.index} of {receipt.checkpoint.origin} "
          f"at {receipt.entry.time_ms} ms; receipt written to {out}")
