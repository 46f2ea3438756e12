"""Tables and figures from an evaluation's ``results.jsonl``: one folder, one index page.

    write_report(cfg, "eval-out")     # eval-out/report/{index.md, results.csv, summary.md, *.png}

The summary matrix is scheme × attack → detected / missed at the config's α over the
seeds, next to each scheme's false-claim rate on the null models. Null models are where
honesty is decided, so the report also checks each scheme's analytic null against the
empirical one: if more null claims fall below α than a binomial bound on α allows
(one-sided, 99 %), the analytic p-values are called *optimistic* for that scheme, and
decisions are also reported at a threshold calibrated on the null models (the largest
level at which no null claim would be accepted, capped at α), the way the
Watermark-Robustness-Toolbox calibrates on empirical nulls.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections import defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..protocol.stats import binomial_sf
from .config import EvalConfig
from .harness import RESULTS_FILE

__all__ = ["write_report", "load_rows", "calibration", "passes"]


def load_rows(out: str | os.PathLike[str]) -> list[dict[str, Any]]:
    rows = []
    path = Path(out) / RESULTS_FILE
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def passes(row: dict[str, Any], alpha: float) -> bool:
    """Whether a cell's claim passes at level ``alpha`` as its decider would decide it:
    p < alpha, but for UBW's fresh triggers Prop. 1 at p < alpha and the rank test at
    p_rank <= alpha, its p taking only the values n / (K + 1) (with K = 99 and alpha =
    0.01 the least is alpha itself; :func:`~claimkit.protocol.stats.monte_carlo_rank_test`).
    Compared as rationals, as the decider compares them."""
    details = row.get("details") or {}
    if "p_rank" in details:
        total = int(details["fresh"]) + 1
        rank = Fraction(round(details["p_rank"] * total), total)
        return details["p_prop1"] < alpha and rank <= Fraction(alpha)
    return row["p_value"] < alpha


def calibration(nulls: list[dict[str, Any]], alpha: float) -> dict[str, Any]:
    """How the analytic null held on the null models' cells, and a calibrated threshold."""
    null_p = [r["p_value"] for r in nulls]
    n = len(null_p)
    below = sum(passes(r, alpha) for r in nulls)
    # Under a valid null, `below` is at most Binomial(n, alpha); optimistic if that is unlikely.
    tail = binomial_sf(below, n, alpha) if n else 1.0
    threshold = min([alpha] + [p for p in null_p])
    return {"null_claims": n, "false_claims": below, "false_claim_rate": below / n if n else None,
            "tail_probability": tail, "optimistic": bool(n and tail < 0.01),
            "min_null_p": min(null_p) if null_p else None, "calibrated_threshold": threshold}


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def write_report(cfg: EvalConfig, out: str | os.PathLike[str]) -> Path:
    out = Path(out)
    rows = load_rows(out)
    report = out / "report"
    report.mkdir(exist_ok=True)
    _write_csv(rows, report / "results.csv")
    alpha = cfg.alpha
    by_scheme: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_scheme[r["scheme_label"]].append(r)
    cal = {s: calibration([r for r in rs if r["kind"] == "null"], alpha)
           for s, rs in by_scheme.items()}

    attack_labels = [a.label for a in cfg.attacks]
    lines = [f"# Evaluation `{cfg.name}`", "",
             f"Data: {cfg.data}; seeds: {list(cfg.seeds)}; α = {alpha}; split: {cfg.split}; "
             f"epochs: {cfg.epochs or 'recipe'}; architecture: {cfg.arch or 'recipe'}.", "",
             "## Summary: detected at α over the seeds (median p), and false claims on null models", "",
             *_header(["scheme", "no attack", *attack_labels, "false claims (nulls)",
                       "calibrated threshold"])]
    for scheme, rs in by_scheme.items():
        cells = [_detect(rs, "owner", None, alpha)]
        cells += [_detect(rs, "attack", label, alpha) for label in attack_labels]
        c = cal[scheme]
        fc = f"{c['false_claims']}/{c['null_claims']}" + (" **optimistic**" if c["optimistic"] else "")
        lines.append(_row([scheme, *cells, fc, _fmt_p(c["calibrated_threshold"])]))
    lines += ["", "## Accuracy of the models (test split, mean over seeds)", "",
              *_header(["scheme", "owner", *attack_labels])]
    for scheme, rs in by_scheme.items():
        accs = [_mean_acc(rs, "owner", None)] + [_mean_acc(rs, "attack", a) for a in attack_labels]
        lines.append(_row([scheme, *accs]))
    effect = _effect_table(by_scheme, attack_labels)
    if effect:
        lines += ["", "## What each model learned from the release (UBW §5.1, mean over seeds)", "",
                  "ASR-A / ASR-C: the share of the triggered test images (the source class "
                  "for UBW-C) the model gets wrong, of all / of those it gets right without "
                  "the trigger (ASR-A counts a model's own errors too); Dp: the "
                  "dispersibility of its predictions on them (nats). The null models show "
                  "what a model never trained on the release does under the key's trigger.",
                  "", *effect]
    lines += ["", "## Null models: the analytic null against the empirical one", "",
              "| scheme | null claims | accepted at α | tail probability | min null p | verdict |",
              "| --- | --- | --- | --- | --- | --- |"]
    for scheme, c in cal.items():
        if c["null_claims"]:
            lines.append(f"| {scheme} | {c['null_claims']} | {c['false_claims']} | "
                         f"{_fmt_p(c['tail_probability'])} | {_fmt_p(c['min_null_p'])} | "
                         f"{'optimistic: use the calibrated threshold' if c['optimistic'] else 'consistent'} |")
    sizes = _opened_sizes(cfg)
    if sizes:
        lines += ["", "## p-value against the number of opened items (owner models, median)", "",
                  *_header(["scheme", *(f"m = {k}" for k in sizes)])]
        for scheme, rs in by_scheme.items():
            vals = []
            for k in sizes:
                ps = sorted(r["p_value"] for r in rs if r["kind"] == "opened" and r["opened"] == k)
                vals.append(_fmt_p(ps[len(ps) // 2]) if ps else "—")
            lines.append(_row([scheme, *vals]))
    figures = _figures(rows, cfg, report, cal)
    (report / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    index = [f"# Report: {cfg.name}", "", "- [summary tables](summary.md)",
             "- [every cell as CSV](results.csv)", "- [the config](../config.json)", ""]
    index += [f"![{f.stem}]({f.name})" for f in figures]
    (report / "index.md").write_text("\n".join(index) + "\n", encoding="utf-8")
    (report / "calibration.json").write_text(json.dumps(cal, indent=2, sort_keys=True), encoding="utf-8")
    return report / "index.md"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(cells: list[str]) -> list[str]:
    return [_row(cells), _row(["---"] * len(cells))]


def _detect(rows: list[dict], kind: str, attack: str | None, alpha: float) -> str:
    sel = [r for r in rows if r["kind"] == kind and (attack is None or r["attack_label"] == attack)]
    if not sel:
        return "—"
    hits = sum(passes(r, alpha) for r in sel)
    ps = sorted(r["p_value"] for r in sel)
    return f"{hits}/{len(sel)} ({_fmt_p(ps[len(ps) // 2])})"


def _mean_acc(rows: list[dict], kind: str, attack: str | None) -> str:
    sel = [r["test_accuracy"] for r in rows if r["kind"] == kind and (attack is None or r["attack_label"] == attack)]
    return f"{100 * sum(sel) / len(sel):.2f} %" if sel else "—"


def _effect_table(by_scheme: dict[str, list[dict]], attack_labels: list[str]) -> list[str]:
    """ASR-A, ASR-C and Dp per scheme (rows) and model kind (columns), for the schemes whose
    cells carry them (data set schemes; rows from before 2026-12-06 carry none)."""
    table = []
    for scheme, rs in by_scheme.items():
        if not any(r.get("effect") for r in rs):
            continue
        cells = [_mean_effect(rs, "owner", None)]
        cells += [_mean_effect(rs, "attack", label) for label in attack_labels]
        table.append(_row([scheme, *cells, _mean_effect(rs, "null", None)]))
    return [*_header(["scheme", "no attack", *attack_labels, "nulls"]), *table] if table else []


def _mean_effect(rows: list[dict], kind: str, attack: str | None) -> str:
    sel = [r["effect"] for r in rows if r["kind"] == kind and r.get("effect")
           and (attack is None or r["attack_label"] == attack)]
    if not sel:
        return "—"
    asr_a, asr_c, dp = (sum(e[k] for e in sel) / len(sel) for k in ("asr_a", "asr_c", "dp"))
    return f"{100 * asr_a:.1f} / {100 * asr_c:.1f} % · {dp:.2f}"


def _write_csv(rows: list[dict], path: Path) -> None:
    fields = ["id", "kind", "scheme", "scheme_label", "seed", "attack", "attack_label", "null",
              "opened", "model", "test_accuracy", "asr_a", "asr_c", "dp", "test", "statistic",
              "p_value", "accepted", "details"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**r, **(r.get("effect") or {}),
                        "details": json.dumps(r.get("details"), sort_keys=True)})


def _neglog(p: float) -> float:
    return -math.log10(max(p, 1e-300))


def _figures(rows: list[dict], cfg: EvalConfig, report: Path, cal: dict) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    schemes = sorted({r["scheme_label"] for r in rows})
    # 1. -log10 p per attack, per scheme (points = seeds), with the α line.
    labels = ["no attack"] + [a.label for a in cfg.attacks]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(labels)), 4))
    for j, scheme in enumerate(schemes):
        for i, label in enumerate(labels):
            ps = [r["p_value"] for r in rows if r["scheme_label"] == scheme and (
                (label == "no attack" and r["kind"] == "owner") or r.get("attack_label") == label)]
            ax.scatter([i + 0.12 * (j - len(schemes) / 2)] * len(ps), [_neglog(p) for p in ps],
                       s=18, label=scheme if i == 0 else None, color=f"C{j}")
    ax.axhline(_neglog(cfg.alpha), color="k", lw=0.8, ls="--", label=f"α = {cfg.alpha}")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylabel("−log10 p (claim)")
    ax.set_title("Claims after each attack (higher: stronger evidence)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    made.append(_save(fig, report / "claims_by_attack.png"))
    # 2. Null p-values: empirical CDF against the uniform the analytic null promises.
    fig, ax = plt.subplots(figsize=(5, 4))
    for j, scheme in enumerate(schemes):
        ps = sorted(r["p_value"] for r in rows if r["scheme_label"] == scheme and r["kind"] == "null")
        if ps:
            ax.step(ps, [(i + 1) / len(ps) for i in range(len(ps))], where="post", label=scheme, color=f"C{j}")
    ax.plot([1e-6, 1], [1e-6, 1], color="k", lw=0.8, ls="--", label="uniform (valid null)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("p on null models")
    ax.set_ylabel("fraction ≤ p")
    ax.set_title("Null models: above the diagonal = optimistic")
    ax.legend(fontsize=7)
    fig.tight_layout()
    made.append(_save(fig, report / "null_calibration.png"))
    # 3. Accuracy / robustness trade-off of the attacked models.
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, label in enumerate(a.label for a in cfg.attacks):
        sel = [r for r in rows if r.get("attack_label") == label]
        ax.scatter([100 * r["test_accuracy"] for r in sel], [_neglog(r["p_value"]) for r in sel],
                   s=18, label=label, color=f"C{i % 10}", marker="os^vD<>"[i // 10 % 7])
    ax.axhline(_neglog(cfg.alpha), color="k", lw=0.8, ls="--")
    ax.set_xlabel("test accuracy of the attacked model (%)")
    ax.set_ylabel("−log10 p (claim)")
    ax.set_title("What the attacker keeps vs. what the owner can still prove")
    if cfg.attacks:
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    made.append(_save(fig, report / "tradeoff.png"))
    # 4. Sweeps: one attack name with a varying numeric parameter (epochs, pruning rate, ...).
    for name, param in _sweeps(cfg):
        fig, ax = plt.subplots(figsize=(5, 4))
        for j, scheme in enumerate(schemes):
            pts = defaultdict(list)
            for r in rows:
                if r["scheme_label"] == scheme and r.get("attack") == name and param in (r.get("attack_params") or {}):
                    pts[float(r["attack_params"][param])].append(_neglog(r["p_value"]))
            xs = sorted(pts)
            ax.plot(xs, [sum(pts[x]) / len(pts[x]) for x in xs], marker="o", label=scheme, color=f"C{j}")
        ax.axhline(_neglog(cfg.alpha), color="k", lw=0.8, ls="--")
        ax.set_xlabel(f"{name}: {param}")
        ax.set_ylabel("−log10 p (mean over seeds)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        made.append(_save(fig, report / f"sweep_{name}_{param}.png"))
    if _opened_sizes(cfg):
        fig, ax = plt.subplots(figsize=(5, 4))
        for j, scheme in enumerate(schemes):
            ks = sorted({r["opened"] for r in rows
                         if r["scheme_label"] == scheme and r["kind"] == "opened"})
            med = []
            for k in ks:
                ps = sorted(r["p_value"] for r in rows if r["scheme_label"] == scheme and r["kind"] == "opened" and r["opened"] == k)
                med.append(_neglog(ps[len(ps) // 2]) if ps else float("nan"))
            ax.plot(ks, med, marker="o", label=scheme, color=f"C{j}")
        ax.set_xlabel("opened items m")
        ax.set_ylabel("−log10 p (median)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        made.append(_save(fig, report / "p_vs_opened.png"))
    return made


def _opened_sizes(cfg: EvalConfig) -> list[int]:
    """Every claim size swept, the grid's and the schemes' own."""
    return sorted({k for s in cfg.schemes for k in cfg.sweep(s)})


def _sweeps(cfg: EvalConfig) -> list[tuple[str, str]]:
    values: dict[tuple[str, str], set[str]] = defaultdict(set)
    for a in cfg.attacks:
        for k, v in a.params.items():
            try:
                float(v)
            except ValueError:
                continue
            values[a.name, k].add(v)
    return sorted(key for key, vs in values.items() if len(vs) >= 2)


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path
