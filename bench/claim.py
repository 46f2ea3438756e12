"""Claim + verify of a 100-trigger claim on the CPU, queries included (issue: ML engine).

    python -m bench claim

Owner: announce, open all 100 items, query the suspect model, sign. Arbiter: parse,
check everything, re-query the model. The baseline is the model's bare forward pass on
the same 100 trigger images, in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from claimkit.claim.bundle import ClaimBundle
from claimkit.claim.make import make_claim
from claimkit.claim.verify import verify_claim
from claimkit.identity import Identity
from claimkit.ml.data import load_dataset
from claimkit.ml.models import build, save_model
from claimkit.ml.oracle import LocalModel
from claimkit.ml.train import TrainConfig, as_tensor, predict, train
from claimkit.registry.entries import Registration, sign_request
from claimkit.registry.log import Registry
from claimkit.schemes.trigger_set import (
    BACKEND,
    TriggerSetParams,
    keygen,
    trigger_images,
)

from .common import emit


def main(argv: list[str]) -> None:
    argparse.ArgumentParser(prog="python -m bench claim",
                            description="Claim + verify of a 100-trigger claim on the CPU "
                                        "(no options).").parse_args(argv)
    torch.set_num_threads(2)
    data = load_dataset("digits")
    owner = Identity.generate("owner", seed=b"\x01" * 32)
    runs = 5
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        registry = Registry.init(tmp_path / "reg", origin="bench.example/claim",
                                 passphrase="bench", key_strength="min")
        mks = [keygen(TriggerSetParams(10, (1, 8, 8), items=100)) for _ in range(runs)]
        model = build("digits-cnn", num_classes=10, seed=0)
        train(model, data, TrainConfig(epochs=2, batch_size=64, seed=0, device="cpu"),
              triggers=trigger_images(mks[0]), progress=False)
        save_model(model, tmp_path / "m.safetensors", arch="digits-cnn", input_shape=(1, 8, 8),
                   num_classes=10)
        oracle = LocalModel.from_file(tmp_path / "m.safetensors", device="cpu")
        claim_s, verify_s, forward_s = [], [], []
        for mk in mks:
            vk = mk.verification_key
            request = Registration(owner.public, vk.scheme, vk.digest, vk.items)
            receipt = registry.register(request, sign_request(request, owner))
            ask = BACKEND.answerer(oracle, vk)
            t0 = time.perf_counter()
            bundle = make_claim(registry, mk, receipt, oracle.info.digest, ask=ask,
                                identity=owner, k=100)
            data_bytes = bundle.to_json()
            t1 = time.perf_counter()
            verify_claim(ClaimBundle.from_json(data_bytes), log_key=registry.log_key,
                         suspect=oracle.info.digest, oracle=ask)
            t2 = time.perf_counter()
            x = as_tensor(trigger_images(mk)[0], torch.device("cpu"))
            t3 = time.perf_counter()
            predict(oracle.model, x)
            forward_s.append(time.perf_counter() - t3)
            claim_s.append(t1 - t0)
            verify_s.append(t2 - t1)
        registry.close()
    total = [a + b for a, b in zip(claim_s, verify_s)]
    emit("claim", {"triggers": 100, "runs": runs, "device": "cpu",
                   "claim_s_median": statistics.median(claim_s),
                   "verify_with_requery_s_median": statistics.median(verify_s),
                   "claim_plus_verify_s_median": statistics.median(total), "target_s": 1.0,
                   "baseline_forward_pass_s_median": statistics.median(forward_s),
                   "ratio_to_forward_pass": statistics.median(total) / statistics.median(forward_s)})
