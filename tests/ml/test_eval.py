"""The evaluation harness: config checks, a grid on digits, cache reuse, resume, report."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from claimkit.cli import cli
from claimkit.errors import MalformedInputError
from claimkit.eval import load_config, run_grid, write_report
from claimkit.eval.report import calibration, passes

torch.set_num_threads(2)

GRID = """
name = "t"
data = "digits"
device = "cpu"
seeds = [0]
epochs = 3
split = "halves"
opened_sweep = [10, 20]

[[scheme]]
name = "trigger-set"
params = { items = 40 }
opened = 20

[[attack]]
name = "ftal"
params = { epochs = 1 }

[null]
seeds = 2
disjoint = 1
archs = ["mlp"]
"""


def _write(tmp_path, text, name="grid.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("data = 'digits'\n", "at least one [[scheme]]"),
    ("name = 'x'\n[[scheme]]\nname = 'trigger-set'\n", "'data'"),
    ("data = 'digits'\ncolour = 1\n[[scheme]]\nname = 'trigger-set'\n", "unknown key 'colour'"),
    ("data = 'digits'\nseeds = []\n[[scheme]]\nname = 'trigger-set'\n", "seeds"),
    ("data = 'digits'\n[[scheme]]\nname = 'trigger-set'\n[null]\ndisjoint = 2\nsplit = 1\n", "unknown key 'split'"),
    ("data = 'digits'\nsplit = 'full'\n[[scheme]]\nname = 'trigger-set'\n[null]\ndisjoint = 2\n", "needs split"),
    ("data = 'digits'\n[[scheme]]\nname = 'trigger-set'\nparams = { items = [1] }\n", "params.items"),
    ("data = [\n", "not valid TOML"),
    ("data = 'digits'\n[[scheme]]\nname = 'ewe'\nopened_sweep = 5\n", "opened_sweep must be a list"),
    ("data = 'digits'\n[[scheme]]\nname = 'ewe'\npretrained = 1\n", "pretrained must be true or false"),
    ("data = 'digits'\nsubset = -1\n[[scheme]]\nname = 'trigger-set'\n", "subset"),
    ("data = 'digits'\nseeds = [true]\n[[scheme]]\nname = 'trigger-set'\n", "seeds"),
    ("data = 'digits'\nseeds = [9223372036854775808]\n[[scheme]]\nname = 'trigger-set'\n", "seeds"),
])
def test_bad_configs_are_refused_with_the_reason(tmp_path, text, message):
    with pytest.raises(MalformedInputError, match=message.replace("[", r"\[")):
        load_config(_write(tmp_path, text))


def test_a_config_must_be_a_regular_file(tmp_path):
    """A FIFO named like a config would block the read for ever."""
    import os
    os.mkfifo(tmp_path / "grid.toml")
    with pytest.raises(MalformedInputError, match="not a regular file"):
        load_config(tmp_path / "grid.toml")


def _nulls(ps):
    return [{"p_value": p, "test": "binomial", "details": {}} for p in ps]


def test_calibration_flags_an_optimistic_null():
    honest = calibration(_nulls([0.2, 0.5, 0.9, 0.04, 0.7] * 4), alpha=0.01)
    assert not honest["optimistic"] and honest["calibrated_threshold"] == 0.01
    liar = calibration(_nulls([1e-4, 2e-3, 5e-3, 0.3, 0.6] * 4), alpha=0.01)
    assert liar["optimistic"] and liar["false_claims"] == 12
    assert liar["calibrated_threshold"] == 1e-4       # below every null claim


def test_claims_pass_as_their_decider_decides():
    """p < α, but a rank test also rejects at p = α (its p is n / (K + 1)): the report
    counted 2 of 440 null claims where `claimkit verify` accepted 4 (2026-12-06)."""
    def ranked(p_prop1, p_rank, fresh=199):
        return {"p_value": max(p_prop1, p_rank), "test": "paired-t-margin-and-rank",
                "details": {"p_prop1": p_prop1, "p_rank": p_rank, "fresh": fresh}}

    assert passes(ranked(1e-19, 0.01), 0.01) and passes(ranked(1e-19, 0.005), 0.01)
    assert not passes(ranked(1e-19, 0.015), 0.01) and not passes(ranked(0.01, 0.005), 0.01)
    assert passes(ranked(1e-5, 1 / 100, fresh=99), 0.01)
    assert not passes(ranked(1e-5, 2 / 100, fresh=99), 0.01)
    assert not passes({"p_value": 0.01, "test": "binomial", "details": {}}, 0.01)
    assert passes({"p_value": 0.0099, "test": "binomial", "details": {}}, 0.01)
    assert calibration([ranked(1e-19, 0.01), ranked(0.3, 0.01), ranked(1e-9, 0.5)],
                       0.01)["false_claims"] == 1


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    if not _attacks_available():
        pytest.skip("claimkit.attacks is not importable")
    root = tmp_path_factory.mktemp("eval")
    cfg = load_config(_write(root, GRID))
    out = root / "out"
    run_grid(cfg, out, progress=False)
    return cfg, out


def _attacks_available() -> bool:
    try:
        import claimkit.attacks  # noqa: F401
    except ImportError:
        return False
    return True


def _rows(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_the_grid_evaluates_every_cell(grid):
    cfg, out = grid
    rows = _rows(out)
    kinds = sorted(r["kind"] for r in rows)
    # owner, 2 opened-sweep cells, 1 attack, 2 + 1 + 1 null models
    assert kinds == ["attack", "null", "null", "null", "null", "opened", "opened", "owner"]
    owner = next(r for r in rows if r["kind"] == "owner")
    assert owner["accepted"] and owner["p_value"] < 1e-6 and owner["opened"] == 20
    assert {r["null"] for r in rows if r["kind"] == "null"} == {
        "seed:1000", "seed:1001", "disjoint:1000", "arch:mlp:1000"}
    assert not any(r["accepted"] for r in rows if r["kind"] == "null")


def test_a_rerun_reuses_models_and_cells(grid, monkeypatch):
    cfg, out = grid
    before = (out / "results.jsonl").read_bytes()

    def no_training(*a, **k):
        raise AssertionError("a cached model was trained again")

    monkeypatch.setattr("claimkit.ml.jobs.fit_and_save", no_training)
    monkeypatch.setattr("claimkit.ml.train.train", no_training)
    run_grid(cfg, out, progress=False)
    assert (out / "results.jsonl").read_bytes() == before


def test_a_killed_run_completes_the_missing_cells_only(grid, monkeypatch):
    cfg, out = grid
    lines = (out / "results.jsonl").read_text().splitlines()
    # As if killed while writing the third-to-last cell: two cells lost, one line cut short.
    (out / "results.jsonl").write_text("\n".join(lines[:-3]) + "\n" + lines[-3][:25])
    monkeypatch.setattr("claimkit.ml.jobs.fit_and_save",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    run_grid(cfg, out, progress=False)
    again = _rows(out)
    assert sorted(r["id"] for r in again) == sorted(json.loads(x)["id"] for x in lines)


def test_the_report_has_tables_csv_and_figures(grid):
    cfg, out = grid
    index = write_report(cfg, out)
    report = index.parent
    for name in ("summary.md", "results.csv", "calibration.json", "claims_by_attack.png",
                 "null_calibration.png", "tradeoff.png", "p_vs_opened.png"):
        assert (report / name).stat().st_size > 0, name
    summary = (report / "summary.md").read_text()
    assert "| trigger-set items=40 | 1/1" in summary and "0/4" in summary


def test_the_cli_redraws_the_report(grid):
    cfg, out = grid
    result = CliRunner().invoke(cli, ["eval", str(out / ".." / "grid.toml"), "--out", str(out),
                                      "--report-only", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["cells"] == 8


def test_one_claims_evidence_is_drawn_against_its_null(tmp_path):
    from fractions import Fraction

    from claimkit.eval.evidence_plot import draw_evidence
    from claimkit.protocol.stats import binomial_test, paired_t_margin_test
    binomial = {"result": binomial_test(30, 50, Fraction(1, 10), alpha=1e-4).to_dict(),
                "observations": [1] * 50, "details": {"n": 50, "p0": 0.1}}
    pairs = [[0.9, 0.1], [0.8, 0.2], [0.95, 0.3], [0.85, 0.1], [0.7, 0.4]]
    paired = {"result": paired_t_margin_test(*zip(*pairs), tau=0.25, alpha=0.01).to_dict(),
              "observations": pairs, "details": {}}
    identical = {"result": paired_t_margin_test([1.0] * 12, [0.0] * 12, tau=0.25).to_dict(),
                 "observations": [[1.0, 0.0]] * 12, "details": {}}   # df None: no t to draw
    for i, evidence in enumerate((binomial, paired, identical)):
        path = draw_evidence(evidence, tmp_path / str(i))
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


SCHEMES_GRID = """
name = "schemes"
data = "digits"
device = "cpu"
seeds = [0]
subset = 1400             # most of the training split, through the subset path
split = "full"

[[scheme]]
name = "ubw-p"
params = { items = 120, m = 60 }
opened = 60               # the bound of a claim's p asks more pairs than the t-test did

[[scheme]]
name = "ewe"
params = { items = 40, min_queries = 20, reference_epochs = 3 }
opened_sweep = [30]

[[attack]]
name = "ftll"
params = { epochs = 1 }

[null]
seeds = 2
"""


def test_a_grid_of_a_data_set_scheme_and_ewe_runs_and_reports(tmp_path):
    """UBW-P (a release, then a model trained on it) and EWE through the same harness;
    MOVE's cells take the same code path (its flow: tests/ml/test_move.py)."""
    cfg = load_config(_write(tmp_path, SCHEMES_GRID))
    assert cfg.subset == 1400
    run_grid(cfg, tmp_path / "out", progress=False)
    rows = _rows(tmp_path / "out")
    assert sorted((r["scheme"], r["kind"]) for r in rows) == sorted(
        [(s, k) for s in ("ubw-p", "ewe") for k in ("owner", "attack", "null", "null")]
        + [("ewe", "opened")])                    # the scheme's own sweep; the grid has none
    for row in rows:
        assert 0.0 <= row["p_value"] <= 1.0, row
        assert row["opened"] == (30 if row["kind"] == "opened" else
                                 60 if row["scheme"] == "ubw-p" else 20), row
    assert not any(r["accepted"] for r in rows if r["kind"] == "null")
    assert all(r["accepted"] for r in rows if r["kind"] == "owner"), [
        (r["scheme"], r["p_value"]) for r in rows if r["kind"] == "owner"]
    # UBW's §5.1 metrics ride on every UBW cell: the owner's model learned the release,
    # the null models did not; a model scheme's cells carry none.
    assert all(r["effect"] is None for r in rows if r["scheme"] == "ewe")
    ubw = {r["kind"]: r["effect"] for r in rows if r["scheme"] == "ubw-p"}
    assert all(0.0 <= e["asr_a"] <= 1.0 and e["dp"] >= 0.0 for e in ubw.values()), ubw
    nulls = [r["effect"]["asr_a"] for r in rows if r["scheme"] == "ubw-p" and r["kind"] == "null"]
    assert ubw["owner"]["asr_a"] > max(nulls) + 0.2, ubw
    report = write_report(cfg, tmp_path / "out").parent
    summary = (report / "summary.md").read_text()
    assert all(f"| {s} " in summary for s in ("ubw-p", "ewe"))
    effect = summary.split("## What each model learned")[1].split("##")[0]
    assert "| ubw-p items=120 m=60 | " in effect and "| ewe" not in effect
    assert f"{100 * ubw['owner']['asr_a']:.1f} / {100 * ubw['owner']['asr_c']:.1f} %" in effect
    assert "asr_a" in (report / "results.csv").read_text().splitlines()[0]


def test_a_pretrained_owner_fine_tunes_the_seeds_clean_model(tmp_path):
    """Adi et al. §4.1 PreTrained: the clean model is trained (and cached), then marked."""
    cfg = load_config(_write(tmp_path, """
data = "digits"
device = "cpu"
epochs = 3

[[scheme]]
name = "trigger-set"
params = { items = 40 }
opened = 20
pretrained = true

[null]
seeds = 0
"""))
    assert cfg.schemes[0].label == "trigger-set items=40 pretrained"
    run_grid(cfg, tmp_path / "out", progress=False)
    (row,) = _rows(tmp_path / "out")
    assert row["kind"] == "owner" and row["accepted"], row
    records = [json.loads(p.read_text()) for p in (tmp_path / "out" / "models").glob("*.run.json")]
    assert sorted(r["extra"].get("start_from") is not None for r in records) == [False, True]


def test_pretrained_applies_to_model_schemes_only(tmp_path):
    cfg = load_config(_write(tmp_path, """
data = "digits"
device = "cpu"
[[scheme]]
name = "ubw-p"
pretrained = true
[null]
seeds = 0
"""))
    with pytest.raises(MalformedInputError, match="pretrained does not apply"):
        run_grid(cfg, tmp_path / "out", progress=False)


@pytest.mark.parametrize("claim", ["opened = 41", "opened_sweep = [10, 41]"])
def test_a_claim_larger_than_the_key_is_refused_before_any_training(tmp_path, claim):
    cfg = load_config(_write(tmp_path, f"""
data = "digits"
device = "cpu"
[[scheme]]
name = "trigger-set"
params = {{ items = 40 }}
{claim}
[null]
seeds = 1
"""))
    with pytest.raises(MalformedInputError, match="cannot open 41 of the key's 40 items"):
        run_grid(cfg, tmp_path / "out", progress=False)
    assert not list((tmp_path / "out" / "models").glob("*.safetensors"))


def test_claim_evidence_draws_ubw_c_fresh_triggers_from_its_seed():
    """A claim without a log: the cell's seed stands in for the challenge, so a UBW-C key
    with fresh triggers is evaluated too, the same way for the same seed."""
    import sys
    from pathlib import Path

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "protocol"))
    from test_ubw_fresh import K, fresh_key

    from claimkit.eval.harness import claim_evidence
    from claimkit.schemes.base import get_backend

    class Oracle:
        num_classes = 4

        def probabilities(self, x):
            p = (x.reshape(len(x), -1).mean(1) / 255.0)[:, None]
            return np.hstack([p, 1 - p, np.zeros((len(x), 2))])

    mk = fresh_key()
    first = claim_evidence(get_backend("ubw-c"), mk, Oracle(), 10, seed=4)
    assert first.details["fresh"] == K and len(first.observations[0]) == K + 2
    assert claim_evidence(get_backend("ubw-c"), mk, Oracle(), 10, seed=4) == first
    assert claim_evidence(get_backend("ubw-c"), mk, Oracle(), 10, seed=5) != first
