"""bench/ubw_c_profile.py runs on a CPU and says what it measured (its figures are for a GPU)."""
import torch

from bench.ubw_c_profile import profile_step
from claimkit.ml.data import load_dataset


def test_profile_times_every_variant_and_names_the_heaviest_ops():
    report = profile_step(load_dataset("digits"), torch.device("cpu"), poisons=70, repeats=1,
                          top=4)
    assert set(report["step_seconds"]) == {"default", "batch_x4", "channels_last",
                                            "blocking_copies", "match_layers_1",
                                            "match_layers_2", "match_layers_3"}
    assert all(s > 0 for s in report["step_seconds"].values())
    assert report["training_epoch_seconds"] > 0 and report["batch"] == 64
    ops = report["heaviest_ops"]
    assert len(ops) == 4 and all(op["op"].startswith("aten::") for op in ops)
    assert ops[0]["self_ms"] >= ops[-1]["self_ms"] and 0 < sum(op["share"] for op in ops) <= 1
