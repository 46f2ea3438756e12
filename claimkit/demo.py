"""`claimkit demo`: the whole story, end to end, on the embedded digits (or real data).

1. The owner makes an identity, a trigger-set key (Adi et al. 2018) and registers its
   verification key in a fresh registry, then marks a model and releases it.
2. A thief takes the released model, registers a trigger set of his own, and fine-tunes
   the model on his data (all layers) while embedding his triggers: his "own" model.
3. The owner claims against the thief's model; an arbiter verifies the bundle offline and
   re-queries the model itself: accepted.
4. A claim against an independently trained model is rejected.
5. The thief claims too; his bundle verifies, but his registration came after the
   owner's: the earliest registration wins.

Every artifact stays in ``out``: identities (secret keys encrypted under the printed
demo passphrase), the registry with its ``log.vkey``, keys, receipts, models with their
run records, and the bundles and verdicts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .claim.bundle import ClaimBundle
from .claim.compete import rank_claims
from .claim.make import make_claim
from .claim.verdict import make_verdict
from .claim.verify import ClaimReport, verify_claim
from .errors import MalformedInputError
from .identity import Identity
from .protocol.keys import MarkingKey
from .registry.entries import Registration, sign_request
from .registry.log import Registry
from .wire import atomic_write, pretty_json

__all__ = ["DEMO_PASSPHRASE", "DemoSettings", "run_demo"]

DEMO_PASSPHRASE = "claimkit demo"  # printed: these are demonstration keys


@dataclass(frozen=True)
class DemoSettings:
    data: str = "digits"
    data_root: str | None = None
    items: int = 100            # trigger-set size ℓ (Adi et al.)
    opened: int = 50            # items opened per claim (cut-and-choose): the owner's two claims use all 100
    seed: int = 0
    device: str = "auto"


@dataclass
class DemoReport:
    out: Path
    figures: dict[str, Any] = field(default_factory=dict)
    ok: bool = False


def run_demo(out: str | Path, settings: DemoSettings = DemoSettings(), *,
             say: Callable[[str], None] = print) -> DemoReport:
    import numpy as np

    from .ml.data import load_dataset
    from .ml.jobs import save_with_record
    from .ml.models import build
    from .ml.oracle import LocalModel
    from .ml.recipes import recipe as recipe_for
    from .ml.train import TrainConfig, train
    from .schemes.trigger_set import BACKEND, TriggerSetParams, keygen, trigger_images

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise MalformedInputError(f"{out} is not empty; choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    report = DemoReport(out)
    fig = report.figures
    started = time.perf_counter()

    say(f"claimkit demo on {settings.data}; everything goes to {out}/")
    data = load_dataset(settings.data, root=settings.data_root)
    recipe = recipe_for(data.name, data.input_shape)
    say(f"  data: {len(data.x_train)} training and {len(data.x_test)} test images "
        f"{data.input_shape}, {data.num_classes} classes, digest {data.digest.hex[:16]}")

    def keyed(name: str) -> Identity:
        identity = Identity.generate(name)
        identity.save(out / f"{name}.key", DEMO_PASSPHRASE)
        return identity

    owner, thief, arbiter = keyed("owner"), keyed("thief"), keyed("arbiter")
    registry = Registry.init(out / "registry", origin="demo.claimkit.local/registry",
                             passphrase=DEMO_PASSPHRASE)

    def cfg(epochs: int, lr: float, seed: int) -> TrainConfig:
        return TrainConfig(epochs=epochs, batch_size=recipe["batch"], lr=lr, seed=seed,
                           trigger_per_batch=recipe["tpb"], device=settings.device,
                           label_smoothing=recipe["label_smoothing"], shift=recipe["shift"])

    def register(identity: Identity, mk: MarkingKey, name: str):
        vk = mk.verification_key
        request = Registration(identity.public, vk.scheme, vk.digest, vk.items)
        receipt = registry.register(request, sign_request(request, identity))
        atomic_write(out / f"{name}-registration.json", receipt.to_json())
        return receipt

    def release(model, name: str, record) -> Any:
        return save_with_record(model, out / f"{name}.safetensors", arch=recipe["arch"],
                                data=data, record=record)

    params = TriggerSetParams(data.num_classes, data.input_shape, items=settings.items,
                              data=data.name, data_digest=data.digest.hex)

    # 1. Owner: keygen, register, mark, release.
    say("1. owner: keygen, register (before release), mark, release")
    owner_mk = keygen(params)
    owner_mk.save(out / "owner-keys", DEMO_PASSPHRASE)
    owner_receipt = register(owner, owner_mk, "owner")
    say(f"   registered as entry {owner_receipt.index} at {owner_receipt.entry.time_ms} ms")
    marked = build(recipe["arch"], num_classes=data.num_classes, input_shape=data.input_shape,
                   seed=settings.seed)
    rec = train(marked, data, cfg(recipe["epochs"], recipe["lr"], settings.seed),
                triggers=trigger_images(owner_mk))
    release(marked, "released", rec)
    clean = build(recipe["arch"], num_classes=data.num_classes, input_shape=data.input_shape,
                  seed=settings.seed + 1)
    rec_clean = train(clean, data, cfg(recipe["epochs"], recipe["lr"], settings.seed + 1))
    release(clean, "independent", rec_clean)
    fig.update(released_test_accuracy=rec.test_accuracy, released_trigger_accuracy=rec.trigger_accuracy,
               independent_test_accuracy=rec_clean.test_accuracy,
               mark_seconds=rec.wall_seconds, clean_seconds=rec_clean.wall_seconds)
    say(f"   released model: test accuracy {rec.test_accuracy:.3f}, trigger accuracy "
        f"{rec.trigger_accuracy:.3f} ({rec.wall_seconds:.1f} s); an independent clean model: "
        f"{rec_clean.test_accuracy:.3f} ({rec_clean.wall_seconds:.1f} s)")

    # 2. Thief: registers his own trigger set after the release, fine-tunes all layers.
    say("2. thief: registers his own trigger set, fine-tunes the released model with it")
    thief_mk = keygen(params)
    thief_receipt = register(thief, thief_mk, "thief")
    stolen = build(recipe["arch"], num_classes=data.num_classes, input_shape=data.input_shape)
    stolen.load_state_dict(marked.state_dict())
    rec_ft = train(stolen, data, cfg(recipe["ft_epochs"], recipe["ft_lr"], settings.seed + 2),
                   triggers=trigger_images(thief_mk))
    stolen_digest = release(stolen, "stolen", rec_ft)
    owner_x, owner_y = trigger_images(owner_mk)
    surviving = float(np.mean(np.array(LocalModel.from_file(out / "stolen.safetensors",
                                                            device=settings.device).labels(owner_x)) == owner_y))
    fig.update(stolen_test_accuracy=rec_ft.test_accuracy,
               stolen_owner_trigger_accuracy=surviving,
               stolen_thief_trigger_accuracy=rec_ft.trigger_accuracy)
    say(f"   stolen model: test accuracy {rec_ft.test_accuracy:.3f}; the owner's triggers still "
        f"answered {surviving:.2f}, the thief's {rec_ft.trigger_accuracy:.2f}")

    # 3-5. Claims and an arbiter.
    def claim(identity: Identity, mk: MarkingKey, receipt, model_file: str, name: str) -> ClaimBundle:
        oracle = LocalModel.from_file(out / model_file, device=settings.device)
        vk = mk.verification_key
        bundle = make_claim(registry, mk, receipt, oracle.info.digest, identity=identity,
                            k=settings.opened, ask=BACKEND.answerer(oracle, vk))
        atomic_write(out / f"bundle-{name}.json", bundle.to_json())
        return bundle

    def arbitrate(bundle: ClaimBundle, model_file: str, name: str, *,
                  control: str | None = None) -> ClaimReport:
        oracle = LocalModel.from_file(out / model_file, device=settings.device)
        vk = bundle.predicate.verification_key
        parsed = ClaimBundle.from_file(out / f"bundle-{name}.json")
        controls = [] if control is None else [(control, BACKEND.answerer(
            LocalModel.from_file(out / control, device=settings.device), vk))]
        report = verify_claim(parsed, log_key=registry.log_key, suspect=oracle.info.digest,
                              oracle=BACKEND.answerer(oracle, vk), controls=controls)
        atomic_write(out / f"verdict-{name}.json", make_verdict(parsed, report, arbiter).to_json())
        return report

    say("3. owner claims against the thief's model; the arbiter re-queries it, and asks its "
        "control, the independent model, the same queries")
    owner_bundle = claim(owner, owner_mk, owner_receipt, "stolen.safetensors", "stolen")
    r_stolen = arbitrate(owner_bundle, "stolen.safetensors", "stolen",
                         control="independent.safetensors")
    (_, control_p, control_accused), = r_stolen.controls
    say(f"   {'ACCEPTED' if r_stolen.accepted else 'REJECTED'}: "
        f"{r_stolen.evidence.details['matches']}/{r_stolen.evidence.details['n']} opened "
        f"triggers match, p = {r_stolen.evidence.result.p_value:.2e}; the control "
        f"{'is accused too' if control_accused else 'is not'} (p = {control_p:.2f})")

    say("4. owner claims against an independently trained model")
    claim(owner, owner_mk, owner_receipt, "independent.safetensors", "independent")
    r_indep = arbitrate(ClaimBundle.from_file(out / "bundle-independent.json"),
                        "independent.safetensors", "independent")
    say(f"   {'ACCEPTED' if r_indep.accepted else 'REJECTED'}: "
        f"{r_indep.evidence.details['matches']}/{r_indep.evidence.details['n']} match, "
        f"p = {r_indep.evidence.result.p_value:.2f}")

    say("5. the thief claims the stolen model too")
    claim(thief, thief_mk, thief_receipt, "stolen.safetensors", "thief")
    r_thief = arbitrate(ClaimBundle.from_file(out / "bundle-thief.json"), "stolen.safetensors", "thief")
    ranked = rank_claims([r_thief, r_stolen])
    winner = "owner" if ranked and ranked[0].owner.public_key == owner.public.public_key else "thief"
    say(f"   his claim is {'valid' if r_thief.accepted else 'rejected'} (p = "
        f"{r_thief.evidence.result.p_value:.2e}) but registered as entry {r_thief.registration_index}, "
        f"after the owner's entry {r_stolen.registration_index}: the {winner} wins")

    registry.close()
    fig.update(stolen_claim_accepted=r_stolen.accepted, stolen_claim_p=r_stolen.evidence.result.p_value,
               control_p=control_p,
               independent_claim_accepted=r_indep.accepted,
               independent_claim_p=r_indep.evidence.result.p_value,
               thief_claim_accepted=r_thief.accepted, winner=winner,
               suspect_digest=stolen_digest.hex, seconds=time.perf_counter() - started)
    report.ok = r_stolen.accepted and not r_indep.accepted and winner == "owner"
    atomic_write(out / "demo.json", pretty_json(fig))
    say(f"done in {fig['seconds']:.0f} s: {'the story holds' if report.ok else 'THE STORY FAILED'}. "
        f"Check a bundle yourself: claimkit verify {out}/bundle-stolen.json "
        f"--registry-key {out}/registry/log.vkey --model {out}/stolen.safetensors "
        f"--control {out}/independent.safetensors "
        f"(demo passphrase: {DEMO_PASSPHRASE!r})")
    return report
