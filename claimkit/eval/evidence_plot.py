"""One claim's evidence as a picture: the suspect's score against the null distribution.

``claimkit verify BUNDLE --report DIR`` calls :func:`draw_evidence` so that an arbiter
sees where the observed statistic falls under the null the p-value comes from, not only
the p-value: the Binomial(n, p0) distribution of matches for label-matching schemes,
Student's t with the test's degrees of freedom for the paired t-tests, and, where the
answers are per-item scores or score pairs, their histogram.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

__all__ = ["draw_evidence"]


def _binomial_pmf(n: int, p: float) -> list[float]:
    logs = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + (k * math.log(p) if k else 0.0) + ((n - k) * math.log1p(-p) if n - k else 0.0)
            for k in range(n + 1)]
    return [math.exp(v) for v in logs]


def _t_pdf(t: float, df: float) -> float:
    return math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)
                    - 0.5 * math.log(df * math.pi) - (df + 1) / 2 * math.log1p(t * t / df))


def _scores(observations: list[Any]) -> tuple[list[float], str] | None:
    if observations and all(isinstance(o, (list, tuple)) and len(o) == 2
                            and all(isinstance(v, (int, float)) for v in o) for o in observations):
        return [float(a) - float(b) for a, b in observations], "per-item difference (first − second)"
    if observations and all(isinstance(o, float) for o in observations):
        return [float(o) for o in observations], "per-item score"
    return None


def draw_evidence(evidence: dict[str, Any], out_dir: str | os.PathLike[str], *,
                  title: str = "") -> Path:
    """Write ``evidence.png`` (and return its path) for one claim's recomputed evidence."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = evidence["result"]
    details = evidence.get("details", {})
    scores = _scores(list(evidence.get("observations", [])))
    fig, axes = plt.subplots(1, 2 if scores else 1, figsize=(10 if scores else 5.5, 4), squeeze=False)
    ax = axes[0][0]
    stat, p = float(result["statistic"]), float(result["p_value"])
    if result["test"] in ("binomial", "success-rate") and "n" in details:
        n = int(details["n"])
        p0 = float(details.get("p0", result.get("params", {}).get("p0", 0.1)))
        pmf = _binomial_pmf(n, min(max(p0, 1e-12), 1 - 1e-12))
        ax.bar(range(n + 1), pmf, color="0.6", label=f"null: Binomial({n}, {p0:.3g})")
        ax.axvline(stat, color="C3", lw=2, label=f"observed: {stat:g} matches")
        ax.set_xlabel("matches among the opened items")
        ax.set_ylabel("probability under the null")
    elif result["df"] is not None:
        df = float(result["df"])
        lo, hi = min(-5.0, stat - 1), max(5.0, stat + 1)
        xs = [lo + (hi - lo) * i / 400 for i in range(401)]
        ax.plot(xs, [_t_pdf(x, df) for x in xs], color="0.4", label=f"null: Student t, df = {df:g}")
        ax.axvline(stat, color="C3", lw=2, label=f"observed: t = {stat:.3g}")
        ax.set_xlabel("test statistic")
        ax.set_ylabel("density under the null")
    else:        # identical differences: no t to draw, p is the bound alone
        ax.text(0.5, 0.5, f"every difference minus the margin = {stat:.3g}\n"
                          "p is the bound ∏ (1 + τ)/(1 + x − y)", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
    params = result.get("params", {})
    parts = (f" (t tail {params['p_t']:.2g}, bound {params['p_bound']:.2g})"
             if "p_t" in params and "p_bound" in params else "")
    ax.set_title(f"{result['test']}: p = {p:.3g}{parts} (α = {result['alpha']:g})", fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    if scores:
        values, what = scores
        ax2 = axes[0][1]
        ax2.hist(values, bins=min(40, max(5, len(values) // 3)), color="C0")
        margin = result.get("params", {}).get("tau", result.get("params", {}).get("margin"))
        if isinstance(margin, (int, float)):
            ax2.axvline(float(margin), color="k", ls="--", label=f"margin τ = {margin:g}")
            ax2.legend(fontsize=8)
        ax2.set_xlabel(what)
        ax2.set_ylabel("items")
        ax2.set_title(f"{len(values)} opened items")
    decision = "ACCEPTED" if result["reject_null"] else "REJECTED"
    fig.suptitle(f"{title} {decision}".strip())
    fig.tight_layout()
    path = out / "evidence.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
