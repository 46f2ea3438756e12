"""Statistical tests for ownership claims, in pure Python (no scipy at import or verify).

An arbiter recomputes every p-value from a bundle's raw answers, and ``claimkit
verify`` must start in well under a second, so the distribution functions here use
only ``math`` and ``fractions``; scipy.stats is the reference the tests compare against
(docs/statistics.md states the accuracy and the tested ranges).

* :func:`binomial_test` — trigger sets (Adi et al. 2018, §3 Verify, §4 non-trivial
  ownership): matches of committed labels against the chance rate p0 of an independent
  model; the tail is summed **exactly** in rational arithmetic, which is a tighter and
  exact replacement of the paper's Hoeffding-style bound (:func:`hoeffding_bound`).
* :func:`paired_t_margin_test` — UBW (Li et al. 2022, Proposition 1): H1 is
  P_b > P_p + τ for the probabilities of the true label on benign and poisoned images.
* :func:`paired_t_test` — MOVE (Li et al., §Verification): one-tailed paired t-test.
* :func:`success_rate_test` — EWE (Jia et al. 2021, §Verification): watermark success
  rate against the false-positive rate of a non-watermarked model.
* :func:`binomial_sample_size`, :func:`t_test_sample_size` — planning helpers.

Every test returns a :class:`TestResult` whose ``reject_null`` means "the ownership
claim is supported at level alpha" (p < alpha).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Sequence

from ..errors import MalformedInputError

__all__ = [
    "TestResult", "binomial_sf", "binomial_test", "all_but_epsilon", "t_sf",
    "paired_t_margin_test", "paired_t_test", "success_rate_test", "binomial_sample_size",
    "t_test_sample_size", "hoeffding_bound", "EXACT_BINOMIAL_COST",
]

EXACT_BINOMIAL_COST = 10**8
"""The binomial tail is summed exactly while n² × bits(denominator of p) stays below
this (about 50 ms); beyond, the incomplete beta function is used (~1e-11 relative, see
docs/statistics.md). p0 = 1/C as a Fraction stays exact up to n ≈ 5,000."""

MAX_SAMPLES = 1_000_000


@dataclass(frozen=True)
class TestResult:
    """A test's outcome with what a verifier needs to recompute and display it."""

    __test__ = False  # not a pytest test class

    test: str
    statistic: float | None
    df: float | None
    p_value: float
    alpha: float
    reject_null: bool
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"test": self.test, "statistic": self.statistic, "df": self.df,
                "p_value": self.p_value, "alpha": self.alpha, "reject_null": self.reject_null,
                "params": dict(self.params)}


# -- checks ---------------------------------------------------------------------------------
def _alpha(alpha: float) -> float:
    if not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise MalformedInputError(f"alpha must be within (0, 1), got {alpha!r}")
    return float(alpha)


def _probability(p: Any, what: str) -> Fraction:
    if isinstance(p, bool) or not isinstance(p, (int, float, Fraction)):
        raise MalformedInputError(f"{what} must be a number")
    if isinstance(p, float) and not math.isfinite(p):
        raise MalformedInputError(f"{what} must be finite")
    exact = Fraction(p)
    if not 0 < exact < 1:
        raise MalformedInputError(f"{what} must be within (0, 1), got {p!r}")
    return exact


def _counts(k: int, n: int) -> None:
    for name, v in (("k", k), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise MalformedInputError(f"{name} must be an integer")
    if n <= 0 or n > MAX_SAMPLES:
        raise MalformedInputError(f"n must be within [1, {MAX_SAMPLES}], got {n}")
    if not 0 <= k <= n:
        raise MalformedInputError(f"k must be within [0, n], got {k}")


def _samples(values: Sequence[Any], what: str) -> list[float]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise MalformedInputError(f"{what} must be a list of numbers")
    if not 2 <= len(values) <= MAX_SAMPLES:
        raise MalformedInputError(f"{what}: need between 2 and {MAX_SAMPLES} samples")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise MalformedInputError(f"{what}: every sample must be a finite number")
        out.append(float(v))
    return out


# -- distributions --------------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            return h
    raise ArithmeticError("incomplete beta continued fraction did not converge")


def _ibeta_lower(a: float, b: float, x: float, log_x: float, log_1mx: float) -> float:
    """I_x(a, b) for x below the mean, where the continued fraction converges fast."""
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * log_x + b * log_1mx)
    return math.exp(log_front) * _betacf(a, b, x) / a


def _ibeta(a: float, b: float, x: float, log_x: float, log_1mx: float) -> float:
    """Regularized incomplete beta I_x(a, b), keeping relative accuracy in the lower tail."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x < (a + 1.0) / (a + b + 2.0):
        return _ibeta_lower(a, b, x, log_x, log_1mx)
    return 1.0 - _ibeta_lower(b, a, 1.0 - x, log_1mx, log_x)


def binomial_sf(k: int, n: int, p: Any) -> float:
    """P[X ≥ k] for X ~ Binomial(n, p); exact rational summation while affordable."""
    _counts(k, n)
    exact = _probability(p, "p")
    if k == 0:
        return 1.0
    a, b = exact.numerator, exact.denominator
    if n * n * b.bit_length() <= EXACT_BINOMIAL_COST:
        c = b - a
        term = math.comb(n, k) * a ** k * c ** (n - k)
        total = term
        for i in range(k, n):
            term = term * (n - i) * a // ((i + 1) * c)
            total += term
        return float(Fraction(total, b ** n))
    pf = float(exact)
    # P[X >= k] = I_p(k, n - k + 1)
    return _ibeta(float(k), float(n - k + 1), pf, math.log(pf), math.log1p(-pf))


def t_sf(t: float, df: float) -> float:
    """P[T > t] for Student's t with ``df`` degrees of freedom."""
    if not isinstance(t, (int, float)) or not math.isfinite(t):
        raise MalformedInputError("t must be a finite number")
    if not isinstance(df, (int, float)) or not math.isfinite(df) or df <= 0:
        raise MalformedInputError("df must be a positive number")
    if t == 0:
        return 0.5
    t2 = t * t
    # x = df / (df + t^2); the upper tail is I_x(df/2, 1/2) / 2 for t > 0.
    x = df / (df + t2)
    log_x = -math.log1p(t2 / df)
    log_1mx = math.log(t2) - math.log(df + t2)
    half_tail = 0.5 * _ibeta(df / 2.0, 0.5, x, log_x, log_1mx)
    return half_tail if t > 0 else 1.0 - half_tail


# -- tests ----------------------------------------------------------------------------------
def binomial_test(matches: int, n: int, p0: Any, *, alpha: float = 0.01) -> TestResult:
    """Exact one-sided binomial test. H0: each item matches with chance p0; H1: rate > p0."""
    alpha = _alpha(alpha)
    p = binomial_sf(matches, n, p0)
    return TestResult("binomial", float(matches), None, p, alpha, p < alpha,
                      {"n": n, "k": matches, "p0": float(p0)})


def success_rate_test(successes: int, n: int, fpr: Any, *, alpha: float = 0.05) -> TestResult:
    """EWE verification: is the watermark success rate above a clean model's fpr?

    Jia et al. bound the clean model's success count with a CLT (normal) bound; the
    exact binomial tail used here is the quantity that bound approximates.
    """
    alpha = _alpha(alpha)
    p = binomial_sf(successes, n, fpr)
    return TestResult("success-rate", float(successes), None, p, alpha, p < alpha,
                      {"n": n, "successes": successes, "fpr": float(fpr),
                       "rate": successes / n})


def all_but_epsilon(matches: int, n: int, epsilon: float) -> bool:
    """Adi et al. 2018 Verify: accept when at most ⌊ε·n⌋ of the n items mismatch."""
    _counts(matches, n)
    if not isinstance(epsilon, (int, float)) or not 0 <= epsilon <= 1:
        raise MalformedInputError("epsilon must be within [0, 1]")
    return n - matches <= math.floor(epsilon * n)


def _one_sample_upper(diffs: list[float], alpha: float, test: str,
                      params: dict[str, Any]) -> TestResult:
    m = len(diffs)
    mean = math.fsum(diffs) / m
    var = math.fsum((d - mean) ** 2 for d in diffs) / (m - 1)
    if var == 0.0:
        # The t statistic is undefined without variance; fall back to the exact sign
        # test on the (identical) differences, which is valid for any distribution.
        positive = sum(d > 0 for d in diffs)
        p = binomial_sf(positive, m, Fraction(1, 2)) if positive else 1.0
        return TestResult(test, None, None, p, alpha, p < alpha,
                          {**params, "m": m, "mean_difference": mean, "fallback": "sign-test"})
    t = mean / math.sqrt(var / m)
    p = t_sf(t, m - 1)
    return TestResult(test, t, float(m - 1), p, alpha, p < alpha,
                      {**params, "m": m, "mean_difference": mean})


def paired_t_margin_test(benign: Sequence[float], watermarked: Sequence[float], *,
                         tau: float, alpha: float = 0.05) -> TestResult:
    """UBW Proposition 1: H0 mean(P_b − P_p) ≤ τ against H1 mean(P_b − P_p) > τ."""
    alpha = _alpha(alpha)
    b = _samples(benign, "benign")
    w = _samples(watermarked, "watermarked")
    if len(b) != len(w):
        raise MalformedInputError("benign and watermarked need the same number of samples")
    if not isinstance(tau, (int, float)) or not math.isfinite(tau) or not 0 <= tau < 1:
        raise MalformedInputError("tau must be within [0, 1)")
    diffs = [x - y - tau for x, y in zip(b, w)]
    return _one_sample_upper(diffs, alpha, "paired-t-margin", {"tau": float(tau)})


def paired_t_test(x: Sequence[float], y: Sequence[float], *, alpha: float = 0.05) -> TestResult:
    """MOVE: one-tailed paired t-test, H1: mean(x − y) > 0."""
    alpha = _alpha(alpha)
    xs, ys = _samples(x, "x"), _samples(y, "y")
    if len(xs) != len(ys):
        raise MalformedInputError("x and y need the same number of samples")
    return _one_sample_upper([a - b for a, b in zip(xs, ys)], alpha, "paired-t", {})


# -- planning -------------------------------------------------------------------------------
def _critical_matches(n: int, p0: Fraction, alpha: float) -> int | None:
    """Smallest k with P[X ≥ k] < alpha under p0, or None if even k = n is not enough."""
    if binomial_sf(n, n, p0) >= alpha:
        return None
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if binomial_sf(mid, n, p0) < alpha:
            hi = mid
        else:
            lo = mid + 1
    return lo


def binomial_sample_size(p0: Any, p1: Any, *, alpha: float = 0.01, power: float = 0.99,
                         max_n: int = 2_000) -> int:
    """Smallest n whose exact one-sided test at ``alpha`` has ``power`` when the rate is p1."""
    alpha = _alpha(alpha)
    q0, q1 = _probability(p0, "p0"), _probability(p1, "p1")
    if q1 <= q0:
        raise MalformedInputError("p1 must exceed p0")
    if not 0 < power < 1:
        raise MalformedInputError("power must be within (0, 1)")
    for n in range(1, max_n + 1):
        k = _critical_matches(n, q0, alpha)
        if k is not None and binomial_sf(k, n, q1) >= power:
            return n
    raise MalformedInputError(f"no sample size up to {max_n} reaches power {power}")


def t_test_sample_size(effect_size: float, *, alpha: float = 0.05, power: float = 0.9,
                       max_n: int = 100_000) -> int:
    """Smallest m for a one-sided one-sample (paired) t-test with standardized effect d.

    Uses scipy's noncentral t, imported here only: this is a planning tool, never on the
    verification path.
    """
    from scipy import stats as sst

    alpha = _alpha(alpha)
    if not effect_size > 0:
        raise MalformedInputError("effect_size must be positive")
    for m in range(2, max_n + 1):
        crit = sst.t.isf(alpha, m - 1)
        if sst.nct.sf(crit, m - 1, effect_size * math.sqrt(m)) >= power:
            return m
    raise MalformedInputError(f"no sample size up to {max_n} reaches power {power}")


def hoeffding_bound(n: int, p0: float, k: int) -> float:
    """exp(−2n(k/n − p0)²): the Hoeffding bound on P[X ≥ k], the paper-style bound."""
    _counts(k, n)
    gap = k / n - float(p0)
    return 1.0 if gap <= 0 else math.exp(-2 * n * gap * gap)
