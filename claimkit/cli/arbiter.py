"""The arbiter's command: verify claim bundles, optionally re-querying the suspect."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..errors import EXIT_OK, EXIT_REJECTED
from .base import (
    PathParam,
    cli,
    emit,
    json_option,
    load_identity,
)
from .suspect import suspect_options


# -- arbiter: verify ----------------------------------------------------------------------
def _answerer(oracle: Any, bundle: Any) -> Any:
    """The function that re-asks the bundle's queries of the arbiter's own suspect."""
    from ..schemes.base import get_backend
    vk = bundle.predicate.verification_key
    return get_backend(vk.scheme).answerer(oracle, vk)


def _control(name: str, model: Any, bundle: Any) -> tuple[str, Any]:
    """(name, answerer) of an arbiter's control for ``bundle``; a control that cannot
    answer its queries (another task) is the arbiter's mistake, named as such."""
    from ..errors import ControlError, MalformedInputError
    vk = bundle.predicate.verification_key
    if model.subject.matches(bundle.suspect):
        raise ControlError(f"--control {name} is the bundle's suspect itself")
    classes = vk.params.get("num_classes")
    if isinstance(classes, int) and model.num_classes != classes:   # EWE accepted one silently
        raise ControlError(f"--control {name} sorts images into {model.num_classes} classes; "
                           f"the key's task has {classes}")
    try:
        return name, _answerer(model, bundle)
    except MalformedInputError as e:
        raise ControlError(f"--control {name}: {e}") from None


def _witness_key(key: Any, path: str) -> Any:
    """A witness cosigns with a ``cosignature/v1`` (type 0x04) key. Any other (a log
    key given by mistake) can never match, and rejected valid claims with signed verdicts."""
    from ..errors import MalformedInputError
    from ..registry.note import ALG_COSIGNATURE_V1
    if key.alg != ALG_COSIGNATURE_V1:
        raise MalformedInputError(f"{path}: not a witness key (type 0x{key.alg:02x}; a witness "
                                  "cosigns with a cosignature/v1, type 0x04, key)")
    return key


@cli.command("verify")
@click.argument("bundle_paths", metavar="BUNDLE...", nargs=-1, required=True,
                type=PathParam(dir_okay=False))
@click.option("--registry-key", "registry_key", type=PathParam(dir_okay=False),
              envvar="CLAIMKIT_REGISTRY_KEY",
              help="The registry's log.vkey (or CLAIMKIT_REGISTRY_KEY). Required.")
@click.option("--witness-key", "witness_keys", multiple=True, type=PathParam(dir_okay=False),
              help="A witness's vkey that must have cosigned the registration (repeatable).")
@suspect_options
@click.option("--sign-verdict", "verdict_key", type=PathParam(exists=True, dir_okay=False),
              help="Sign a verdict per bundle with this arbiter key file.")
@click.option("--verdict-out", type=PathParam(dir_okay=False),
              help="Where to write the signed verdict (one bundle; default BUNDLE.verdict.json).")
@click.option("--report", "report_dir", type=PathParam(file_okay=False), default=None,
              help="Draw each valid claim's statistic against its null distribution into "
                   "REPORT/<bundle name>/evidence.png.")
@click.option("--max-alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=None, help="Reject a claim whose key was registered with a level alpha "
                                 "above this (the owner chose it at keygen; default: any).")
@click.option("--control", "control_paths", multiple=True,
              type=PathParam(exists=True, dir_okay=False),
              help="A model you know the owner did not mark (e.g. one you trained on public "
                   "data; safetensors; repeatable): it is asked the claim's queries, and a "
                   "claim whose test accepts it too is rejected as not specific to the suspect.")
@json_option("Print the report as JSON.")
def verify(bundle_paths: tuple[str, ...], registry_key: str | None, witness_keys: tuple[str, ...],
           model_path: str | None, arch: str | None, onnx_path: str | None, endpoint: str | None,
           timeout: float, verdict_key: str | None, verdict_out: str | None, report_dir: str | None,
           max_alpha: float | None, control_paths: tuple[str, ...], as_json: bool) -> None:
    """Check claim bundles offline and recompute their statistics.

    With --model, --onnx or --endpoint the suspect must be the bundle's subject and is
    re-queried; the arbiter's own answers then decide. A suspect that cannot be
    queried (an endpoint that times out or answers garbage) is exit 2, and no verdict
    is written.

    With several bundles about one model (competing claims), the accepted claim with
    the earliest registration is named the winner.

    Exit 0: a claim is accepted. Exit 1: rejected (a failed check, or statistics that
    do not support ownership).
    Exit 2: malformed bundle or arguments; among several bundles, a malformed one is
    listed and the others are still judged (exit 2 only if none is accepted).

    Example: claimkit verify bundle.json --registry-key registry/log.vkey --model suspect.safetensors
    """
    from ..claim.bundle import ClaimBundle
    from ..claim.verify import verify_claim
    from ..errors import (EXIT_MALFORMED, ControlError, MalformedInputError, OracleError,
                          VerificationError)
    from ..protocol.scheme import KIND_ONLY_SCHEMES
    from ..registry.receipt import load_vkey
    if registry_key is None:
        raise MalformedInputError("--registry-key is required: the registry's log.vkey you trust")
    if verdict_out is not None and len(bundle_paths) != 1:
        raise MalformedInputError("--verdict-out takes one bundle; verdicts of several go beside them")
    targets = {}
    if verdict_key is not None:      # one verdict per bundle, none over another's or a bundle
        targets = {path: verdict_out or str(Path(path).with_suffix(".verdict.json"))
                   for path in bundle_paths}
        resolved = [Path(target).resolve() for target in targets.values()]
        if len(set(resolved)) < len(resolved) or set(resolved) & {Path(p).resolve()
                                                                  for p in bundle_paths}:
            raise MalformedInputError("two bundles' verdicts, or a verdict and a bundle, would "
                                      "share a file (BUNDLE.verdict.json); rename the bundles")
    log_key = load_vkey(registry_key)
    witnesses = [_witness_key(load_vkey(p), p) for p in witness_keys]
    arbiter = load_identity(verdict_key) if verdict_key is not None else None
    controls = []
    if control_paths:
        from ..ml.oracle import LocalModel
        controls = [(Path(path).name, LocalModel.from_file(path)) for path in control_paths]
    checked_with = {"log_key": log_key.to_vkey(), "witness_keys": [w.to_vkey() for w in witnesses],
                    "max_alpha": max_alpha,
                    **({"controls": [c.subject.to_dict() for _, c in controls]} if controls else {})}
    suspect = None
    if (model_path, onnx_path, endpoint, arch) != (None, None, None, None):
        from ..ml.oracle import open_oracle
        suspect = open_oracle(model=model_path, onnx=onnx_path, endpoint=endpoint, arch=arch,
                              timeout=timeout)
    results: list[dict[str, Any]] = []
    reports = []
    lines = []
    judged: list[tuple[str, Any, Any, tuple[str, ...]]] = []   # verdicts once all are ranked
    malformed = False
    for path in bundle_paths:
        report, reasons = None, ()
        try:
            bundle = ClaimBundle.from_file(path)
            try:
                report = verify_claim(bundle, log_key=log_key, witness_keys=witnesses,
                                      oracle=None if suspect is None else _answerer(suspect, bundle),
                                      suspect=None if suspect is None else suspect.subject,
                                      max_alpha=max_alpha,
                                      controls=[_control(n, c, bundle) for n, c in controls])
                reports.append(report)
            except VerificationError as e:
                reasons = (str(e),)
        except (MalformedInputError, OSError) as e:
            # A lone bundle, or a suspect that cannot be queried, ends the run (exit 2, no
            # verdict). Among several bundles a malformed one gets no verdict but must not
            # keep the others from theirs.
            if len(bundle_paths) == 1 or isinstance(e, (OracleError, ControlError)):
                raise
            message = str(e) if isinstance(e, MalformedInputError) else f"{path}: {e.strerror or e}"
            malformed = True
            results.append({"bundle": path, "decision": "reject", "malformed": True,
                            "reasons": [message]})
            lines.append(f"MALFORMED {path}: {message}")
            continue
        judged.append((path, bundle, report, reasons))
        if report is None:
            results.append({"bundle": path, "decision": "reject", "reasons": list(reasons)})
            lines.append(f"REJECTED {path}: {reasons[0]}")
            continue
        results.append({"bundle": path, **report.to_dict()})
        result = report.evidence.result
        if report_dir is not None:
            from ..eval.evidence_plot import draw_evidence
            draw_evidence(report.evidence.to_dict(), Path(report_dir) / Path(path).stem,
                          title=f"{report.scheme} claim on {report.suspect.hex[:12]}")
        lines.append(
            f"{'ACCEPTED' if report.accepted else 'REJECTED'} {path}: {report.scheme} claim by "
            f"{report.owner.name} ({report.owner.key_id[:16]}) on {report.suspect.hex[:16]}\n"
            f"  registered: entry {report.registration_index} of {report.origin} at "
            f"{report.registration_time_ms} ms; claim intent entry {report.intent_index}\n"
            f"  opened {len(report.opened)} items; {result.test} test: p = {result.p_value:.3g} "
            f"(alpha {result.alpha:g}), answers observed by the {report.observer}"
            + (f"\n  note: the owner's answers differ from the suspect's on "
               f"{report.answers_differ} of {len(report.opened)} queries (the decision "
               "uses the suspect's)" if report.answers_differ else "")
            + "".join(f"\n  control {name}: p = {pv:.3g}, "
                      f"{'ACCEPTED too: the key is not specific to the suspect' if acc else 'rejected'}"
                      for name, pv, acc in report.controls)
            + ("\n  note: no control model asked (--control MODEL): that the key accuses "
               "only models marked with it is the owner's word (bundle.md)"
               if report.accepted and not report.controls else "")
            + (f"\n  note: a {report.scheme} claim shows a mark of the key's kind, not whose: "
               "other owners' keys of that kind are accepted against such models too "
               "(bundle.md, 'Keys of one kind')"
               if report.accepted and report.scheme in KIND_ONLY_SCHEMES else "")
            + (f"\n  note: {report.earlier_claims} earlier claim(s) under this registration "
               f"({report.spent_items} items spent); each was a try at alpha, so ask the "
               f"registry's log which suspects they named" if report.earlier_claims else ""))
    accepted = [r for r in reports if r.accepted]
    out: dict[str, Any] = {"bundles": results} if len(bundle_paths) > 1 else results[0]
    winners: dict[str, Any] = {}     # per suspect: claims about other models do not compete
    if len(bundle_paths) > 1 and accepted:
        from ..claim.compete import rank_claims
        for hex_ in sorted({r.suspect.hex for r in accepted}):
            first = rank_claims([r for r in accepted if r.suspect.hex == hex_])[0]
            winners[hex_] = first
            lines.append(f"earliest registration among the accepted claims on {hex_[:16]}: "
                         f"{first.owner.name} (entry {first.registration_index})"
                         + (f"; {first.scheme} claims do not name their owner, so this does "
                            "not settle them (bundle.md, 'Keys of one kind')"
                            if first.scheme in KIND_ONLY_SCHEMES else ""))
        ranked = [{"suspect": hex_, "owner": r.owner.name, "key_id": r.owner.key_id,
                   "registration_index": r.registration_index} for hex_, r in winners.items()]
        if len(ranked) == 1:
            out["earliest_registration"] = {k: v for k, v in ranked[0].items() if k != "suspect"}
        else:
            out["earliest_registrations"] = ranked
    if arbiter is not None:
        _write_verdicts(judged, winners, targets, arbiter, checked_with, several=len(bundle_paths) > 1)
    emit(as_json, out, "\n".join(lines))
    sys.exit(EXIT_OK if accepted else EXIT_MALFORMED if malformed else EXIT_REJECTED)


def _write_verdicts(judged: list[tuple[str, Any, Any, tuple[str, ...]]], winners: dict[str, Any],
                    targets: dict[str, str], arbiter: Any, checked_with: dict[str, Any], *,
                    several: bool) -> None:
    """One signed verdict per judged bundle; among several, each names the bundles about
    its suspect that were judged with it and the one with the earliest registration."""
    from ..claim.verdict import bundle_digest, make_verdict
    from ..wire import atomic_write
    digests = {path: bundle_digest(bundle).to_dict() for path, bundle, _, _ in judged}
    for path, bundle, report, reasons in judged:
        competition = None
        if several:
            hex_ = bundle.suspect.hex
            winner = winners.get(hex_)
            competition = {
                "bundles": [digests[p] for p, b, _, _ in judged if b.suspect.hex == hex_],
                "earliest": None if winner is None else next(
                    digests[p] for p, _, r, _ in judged if r is winner)}
        atomic_write(targets[path], make_verdict(bundle, report, arbiter, reasons=reasons,
                                                 checked_with=checked_with,
                                                 competition=competition).to_json())
