"""Statistical tests for ownership claims, in pure Python (no scipy at import or verify).

An arbiter recomputes every p-value from a bundle's raw answers, and ``claimkit
verify`` must start cold in well under a second, so the distribution functions here
use only :mod:`math` and :mod:`fractions` (``import scipy.special`` alone costs half a
second). scipy.stats is the reference the tests compare against; docs/statistics.md
states the accuracy and the tested ranges.

* :func:`binomial_test` — trigger sets (Adi et al. 2018, §3 Verify and §4.2): the
  number of answers that match the committed labels, against the rate ``p0`` at which
  an independent model matches them (``1/C`` for random labels over C classes). The
  tail is summed **exactly** in rational arithmetic (see :data:`EXACT_MAX_N`), the
  tight replacement of the paper's Hoeffding bound (:func:`hoeffding_bound`).
* :func:`all_but_epsilon` — the paper's own Verify rule, reported beside the test.
* :func:`paired_t_margin_test` — UBW (Li et al. 2022, §4.2, Proposition 1):
  H1 is P_b > P_p + τ for the probabilities of the true label on benign and poisoned
  images; MOVE (§5.4) with its scores (τ = 0: the paper's paired t-test).
* :func:`monte_carlo_rank_test` — UBW-C's fresh triggers (ours; docs/proposals/
  ubw-c-key-specific-test.md): the key's statistic ranked among K i.i.d. fresh ones
  (Barnard 1963).
* :func:`success_rate_test` — EWE (Jia et al. 2021, §4.3.1): watermark success rate
  against the false-positive rate of a non-watermarked model.
* :func:`binomial_sample_size`, :func:`t_test_sample_size` — planning helpers.

Every test returns a :class:`TestResult` whose ``reject_null`` means "the ownership
claim is supported at level alpha" (``p_value < alpha``)::

    >>> from fractions import Fraction
    >>> r = binomial_test(40, 100, Fraction(1, 10), alpha=1e-6)
    >>> r.reject_null, f"{r.p_value:.3e}"
    (True, '2.946e-15')

Numerics. ``P[X >= k]`` for ``X ~ Bin(n, p)`` is the exactly rounded value of the exact
rational sum while ``n <= EXACT_MAX_N`` and ``n * bits(denominator of p) <=
EXACT_MAX_BITS``; beyond, and for Student's t, the regularized incomplete beta
function is evaluated with DiDonato & Morris's continued fraction (BFRAC, as in Boost's
``ibeta_fraction2``) and a prefactor ``x^a y^b / B(a, b)`` built from Stirling-series
remainders and Loader's deviance ``bd0`` (as in R's ``dbinom``) from the *exact*
deviation ``a - (a+b)x``, so no ``lgamma`` differences cancel and small tails keep
their relative accuracy (measured: better than 2e-13 relative for p-values above
1e-300; see docs/statistics.md).
"""

from __future__ import annotations

import math
import numbers
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Sequence

from ..errors import ClaimkitError, MalformedInputError

__all__ = [
    "TestResult",
    "binomial_sf",
    "binomial_sf_is_exact",
    "binomial_test",
    "all_but_epsilon",
    "t_sf",
    "margin_floor",
    "min_pairs",
    "paired_t_margin_test",
    "monte_carlo_rank_test",
    "success_rate_test",
    "binomial_sample_size",
    "t_test_sample_size",
    "hoeffding_bound",
    "EXACT_MAX_N",
    "EXACT_MAX_BITS",
    "MAX_TRIALS",
    "MAX_SAMPLES",
    "T_DF_MIN",
    "T_DF_MAX",
]

EXACT_MAX_N = 20_000
"""Largest n for which the binomial tail is summed exactly (rational arithmetic)."""

EXACT_MAX_BITS = 400_000
"""Exact summation also needs ``n * bits(denominator of p) <= EXACT_MAX_BITS`` (about
0.2 s at the limit). ``p = Fraction(1, C)`` is exact for every n <= 20,000 with
C < 2^20; a float p is a binary fraction (0.1 has a 56-bit denominator, so it is exact
for n <= 7,142). Beyond, the incomplete beta path is used (relative error < 2e-13)."""

MAX_TRIALS = 10**12
"""Largest n accepted by the binomial functions (the incomplete beta path is checked
to n = 10^12; near the mean it then needs ~45,000 continued-fraction steps, ~40 ms)."""

MAX_SAMPLES = 1_000_000
"""Largest number of pairs accepted by the t-tests."""


@dataclass(frozen=True)
class TestResult:
    """A test's outcome with what a verifier needs to recompute and display it.

    ``statistic`` is the number of matches (binomial, success-rate), Student's t
    (paired t-tests; ±``sys.float_info.max`` where |t| exceeds the double range), or,
    for a paired test whose differences are all identical (so t is infinite or
    undefined), their common value (``params["method"] == "bound"``; see
    :func:`paired_t_margin_test`). Every field is a finite JSON value.
    """

    __test__ = False  # not a pytest test class

    test: str
    statistic: float
    df: float | None
    p_value: float
    alpha: float
    reject_null: bool
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values only (no inf, no NaN)."""
        return {
            "test": self.test,
            "statistic": self.statistic,
            "df": self.df,
            "p_value": self.p_value,
            "alpha": self.alpha,
            "reject_null": self.reject_null,
            "params": dict(self.params),
        }


# -- checks ---------------------------------------------------------------------------------
def _real(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise MalformedInputError(f"{what} must be a number, got {type(value).__name__}")
    try:
        out = float(value)
    except OverflowError:
        raise MalformedInputError(f"{what} is too large") from None
    if not math.isfinite(out):
        raise MalformedInputError(f"{what} must be finite, got {value!r}")
    return out


def _level(value: Any, what: str) -> float:
    out = _real(value, what)
    if not 0.0 < out < 1.0:
        raise MalformedInputError(f"{what} must be within (0, 1), got {value!r}")
    return out


def _probability(p: Any, what: str) -> Fraction:
    """The exact rational value of a probability strictly between 0 and 1."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise MalformedInputError(f"{what} must be a number, got {type(p).__name__}")
    if isinstance(p, numbers.Rational):
        exact = Fraction(p.numerator, p.denominator)
    else:
        as_float = float(p)  # exact for float and numpy float32/float64
        if not math.isfinite(as_float):
            raise MalformedInputError(f"{what} must be finite, got {p!r}")
        exact = Fraction(as_float)
    if not 0 < exact < 1:
        raise MalformedInputError(f"{what} must be within (0, 1), got {p!r}")
    return exact


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise MalformedInputError(f"{what} must be an integer, got {type(value).__name__}")
    return int(value)


def _counts(k: Any, n: Any, k_name: str = "k") -> tuple[int, int]:
    n = _integer(n, "n")
    k = _integer(k, k_name)
    if not 1 <= n <= MAX_TRIALS:
        raise MalformedInputError(f"n must be within [1, {MAX_TRIALS}], got {n}")
    if not 0 <= k <= n:
        raise MalformedInputError(f"{k_name} must be within [0, n] = [0, {n}], got {k}")
    return k, n


def _fraction_text(p: Fraction) -> str:
    return f"{p.numerator}/{p.denominator}"


# -- the regularized incomplete beta function ------------------------------------------------
# δ(z) = ln Γ(z+1) − (z + ½) ln z + z − ½ ln 2π  for z = 1/2, 1, …, 15 (50-digit values).
_HALF_STIRLERR = (
    0.15342640972002734529, 0.08106146679532725822, 0.054814121051917653896,
    0.041340695955409294094, 0.033162873519936287485, 0.027677925684998339149,
    0.023746163656297495971, 0.020790672103765093112, 0.018488450532673185231,
    0.016644691189821192163, 0.015134973221917378874, 0.013876128823070747999,
    0.012810465242920226924, 0.011896709945891770095, 0.011104559758206917327,
    0.010411265261972096497, 0.0097994161261588032984, 0.0092554621827127329177,
    0.008768700134139385463, 0.0083305634333628712565, 0.0079341145643140205472,
    0.007573675487951840795, 0.0072445543013203831795, 0.0069428401072095298657,
    0.0066652470327076824424, 0.0064089941880042070684, 0.0061717122630394576475,
    0.0059513701127588477356, 0.005746216513010115682, 0.005554733551962801371,
)
_CF_MAX_STEPS = 1_000_000


def _stirlerr(z: float) -> float:
    """δ(z), the error of Stirling's formula: ln Γ(z) = (z−½)ln z − z + ½ln 2π + δ(z)."""
    if z > 15.0:
        # Asymptotic series; the first omitted term is below 2.3e-16 at z = 15.
        w = 1.0 / (z * z)
        return (1 / 12 - w * (1 / 360 - w * (1 / 1260 - w * (1 / 1680 - w / 1188)))) / z
    twice = 2.0 * z
    if twice == math.floor(twice):
        return _HALF_STIRLERR[int(twice) - 1]
    # δ(z) = δ(z+1) + (z + ½) ln(1 + 1/z) − 1, shifted up past 15.
    acc = 0.0
    while z <= 15.0:
        acc += (z + 0.5) * math.log1p(1.0 / z) - 1.0
        z += 1.0
    return acc + _stirlerr(z)


def _bd0(x: float, m: float, d: float) -> float:
    """Loader's deviance x ln(x/m) + m − x, given the exact deviation d = x − m."""
    s = x + m
    if abs(d) < 0.5 * s:
        v = d / s
        total = d * v
        ej = 2.0 * x * v
        v2 = v * v
        j = 3
        while True:
            ej *= v2
            nxt = total + ej / j
            if nxt == total:
                return total
            total = nxt
            j += 2
    ratio = x / m
    log_ratio = math.log(ratio) if 0.0 < ratio < math.inf else math.log(x) - math.log(m)
    return x * (log_ratio - 1.0) + m


def _beta_front(a: float, b: float, ma: float, mb: float, d: float) -> float:
    """x^a y^b / B(a, b), where ma = (a+b)x, mb = (a+b)y and d = a − ma = mb − b."""
    n = a + b
    e = _stirlerr(n) - _stirlerr(a) - _stirlerr(b) - _bd0(a, ma, d) - _bd0(b, mb, -d)
    return math.exp(e) * math.sqrt(a / (2.0 * math.pi * n)) * math.sqrt(b)


def _bfrac(a: float, b: float, x: float, y: float, d: float) -> float:
    """DiDonato & Morris's continued fraction for I_x(a, b) (Boost ``ibeta_fraction2``).

    Returns F with I_x(a, b) = x^a y^b / (B(a, b) F); modified Lentz evaluation. The
    quantity a·y − b·x, which cancels near the mean, is the exact deviation ``d``.
    """
    tiny = 1e-300
    f = a * (d + 1.0) / (a + 1.0)
    if f == 0.0:
        f = tiny
    c, dd = f, 0.0
    for m in range(1, _CF_MAX_STEPS):
        den = a + 2 * m - 1
        an = (a + m - 1) * (a + b + m - 1) * m * (b - m) * x * x / (den * den)
        bn = m + m * (b - m) * x / den + (a + m) * (d + 1.0 + m * (2.0 - x)) / (a + 2 * m + 1)
        dd = bn + an * dd
        if dd == 0.0:
            dd = tiny
        c = bn + an / c
        if c == 0.0:
            c = tiny
        dd = 1.0 / dd
        delta = c * dd
        f *= delta
        if abs(delta - 1.0) <= 2.220446049250313e-16:
            return f
    raise ClaimkitError(
        f"incomplete beta continued fraction did not converge (a={a!r}, b={b!r}, x={x!r})")


def _ibeta(a: float, b: float, x: float, y: float, ma: float, mb: float, d: float) -> float:
    """I_x(a, b) with y = 1 − x, ma = (a+b)x, mb = (a+b)y and d = a − (a+b)x.

    Below the mean (d >= 0) the value itself is computed, above it 1 − I_y(b, a): the
    value returned is never the difference of two nearly equal numbers when it is small.
    """
    if d >= 0.0:
        front = _beta_front(a, b, ma, mb, d)
        return 0.0 if front == 0.0 else front / _bfrac(a, b, x, y, d)
    front = _beta_front(b, a, mb, ma, -d)
    return 1.0 if front == 0.0 else 1.0 - front / _bfrac(b, a, y, x, -d)


# -- the binomial tail -----------------------------------------------------------------------
def _bsplit(lo: int, hi: int, n: int, a: int, c: int) -> tuple[int, int, int]:
    """Binary splitting of Σ_{i=lo+1}^{hi} Π_{j=lo}^{i-1} (n−j)a / ((j+1)c) = T/Q."""
    if hi - lo <= 16:
        p_acc = q_acc = 1
        t_acc = 0
        for i in range(lo, hi):
            pi, qi = (n - i) * a, (i + 1) * c
            t_acc = t_acc * qi + p_acc * pi
            p_acc *= pi
            q_acc *= qi
        return p_acc, q_acc, t_acc
    mid = (lo + hi) // 2
    p1, q1, t1 = _bsplit(lo, mid, n, a, c)
    p2, q2, t2 = _bsplit(mid, hi, n, a, c)
    return p1 * p2, q1 * q2, t1 * q2 + p1 * t2


def _exact_upper(k: int, n: int, a: int, c: int, b: int) -> tuple[int, int]:
    """Σ_{i=k}^{n} C(n,i) a^i c^(n−i) / b^n as an (unreduced) integer ratio."""
    if k == n:
        return a**n, b**n
    p_acc, q_acc, t_acc = _bsplit(k, n, n, a, c)
    return math.comb(n, k) * a**k * c ** (n - k) * (q_acc + t_acc), q_acc * b**n


def _exact_affordable(k: int, n: int, p: Fraction) -> bool:
    if k == 0:
        return True
    return n <= EXACT_MAX_N and n * p.denominator.bit_length() <= EXACT_MAX_BITS


def _sf_exact(k: int, n: int, p: Fraction) -> float:
    if k == 0:
        return 1.0
    a, b = p.numerator, p.denominator
    c = b - a
    if n - k + 1 <= k:  # sum the upper terms
        num, den = _exact_upper(k, n, a, c, b)
    else:  # 1 − P[X <= k−1] = 1 − P[Y >= n−k+1] with Y ~ Bin(n, 1−p), all exact
        num, den = _exact_upper(n - k + 1, n, c, a, b)
        num = den - num
    return num / den  # int / int is correctly rounded


def _sf_beta(k: int, n: int, p: Fraction) -> float:
    """P[X >= k] = I_p(k, n−k+1), with the deviations taken from exact rationals."""
    if k == 0:
        return 1.0
    q = 1 - p
    return _ibeta(float(k), float(n - k + 1), float(p), float(q),
                  float((n + 1) * p), float((n + 1) * q), float(k - (n + 1) * p))


def binomial_sf_is_exact(k: int, n: int, p: Any) -> bool:
    """Whether :func:`binomial_sf` returns the exactly rounded tail for these inputs."""
    k, n = _counts(k, n)
    return _exact_affordable(k, n, _probability(p, "p"))


def binomial_sf(k: int, n: int, p: Any) -> float:
    """P[X >= k] for X ~ Binomial(n, p).

    ``p`` may be a float or a :class:`~fractions.Fraction`; either is taken at its
    exact value (pass ``Fraction(1, 10)`` for exactly 1/10, since the float 0.1 is a
    slightly different number). For ``n <= EXACT_MAX_N`` and ``n * bits(denominator)
    <= EXACT_MAX_BITS`` the result is the exact rational tail rounded once to the
    nearest float (so it is identical on every platform); beyond, it is the
    incomplete beta function ``I_p(k, n−k+1)``, accurate to about 1e-13 relative.
    Tails below about 1e-308 come back as subnormal floats or 0.0.
    """
    k, n = _counts(k, n)
    exact = _probability(p, "p")
    if _exact_affordable(k, n, exact):
        return _sf_exact(k, n, exact)
    return _sf_beta(k, n, exact)


# -- Student's t ----------------------------------------------------------------------------
def _t_upper(t: float, df: float) -> float:
    """P[T > t] for t > 0."""
    if t < 1e-100:
        return 0.5  # 0.5 − t·f(0) with t·f(0) < 1e-100: 0.5 to double precision
    if t > 1e150:
        # t² would overflow: sf = c_ν ν^((ν−1)/2) t^(−ν) (1 + O(ν/t²)), exact in doubles.
        log_c = (math.lgamma((df + 1.0) / 2.0) - math.lgamma(df / 2.0)
                 - 0.5 * math.log(df * math.pi) + 0.5 * (df - 1.0) * math.log(df))
        return math.exp(log_c) * t ** -df if log_c < 700.0 else 0.0
    t2 = t * t
    den = df + t2
    x = df / den
    y = t2 / den
    half = 0.5 * (df + 1.0)
    # d = a − (a+b)x with a = ν/2, b = ½: ν(t²−1) / (2(ν+t²)), without cancellation.
    d = 0.5 * ((t - 1.0) * (t + 1.0)) * x
    return 0.5 * _ibeta(0.5 * df, 0.5, x, y, half * x, half * y, d)


T_DF_MIN, T_DF_MAX = 0.01, 1e15
"""The degrees of freedom :func:`t_sf` accepts (tested from 0.01 to 1e14)."""


def t_sf(t: float, df: float) -> float:
    """P[T > t] for Student's t with ``df`` degrees of freedom (df need not be whole;
    ``T_DF_MIN <= df <= T_DF_MAX``).

    Computed as ½ I_x(df/2, ½), x = df/(df+t²), directly in the upper tail (never as
    1 − cdf), so small p-values keep full relative accuracy: measured better than
    2e-13 relative against 60-digit references for df in [0.05, 1e14] with |t| <= 1e3
    and df in [0.01, 1] with |t| <= 1e300, for tails above 1e-300 (for |t| > 1e150 an
    asymptotic form that is exact in double precision is used).
    """
    t = _real(t, "t")
    df = _real(df, "df")
    if not T_DF_MIN <= df <= T_DF_MAX:
        raise MalformedInputError(f"df must be within [{T_DF_MIN}, {T_DF_MAX:g}], got {df!r}")
    if t == 0.0:
        return 0.5
    if t < 0.0:
        return 1.0 - _t_upper(-t, df)
    return _t_upper(t, df)


# -- binomial tests -------------------------------------------------------------------------
def binomial_test(matches: int, n: int, p0: Any, *, alpha: float = 0.01) -> TestResult:
    """Exact one-sided binomial test for a trigger set (Adi et al. 2018).

    H0: the suspect model is independent of the owner's key, so each of the ``n``
    opened items matches its committed label with probability ``p0`` (``1/C`` for
    labels drawn uniformly from C classes), independently. H1: the match rate exceeds
    ``p0``. The p-value is ``P[X >= matches]`` for ``X ~ Bin(n, p0)``, computed exactly
    (see :func:`binomial_sf`); ``reject_null`` is ``p_value < alpha``.
    """
    alpha = _level(alpha, "alpha")
    k, n = _counts(matches, n, "matches")
    p = _probability(p0, "p0")
    p_value = binomial_sf(k, n, p)
    return TestResult("binomial", float(k), None, p_value, alpha, p_value < alpha,
                      {"n": n, "k": k, "p0": float(p), "p0_exact": _fraction_text(p),
                       "exact": _exact_affordable(k, n, p)})


def success_rate_test(successes: int, n: int, fpr: Any, *, alpha: float = 0.05) -> TestResult:
    """EWE verification (Jia et al. 2021, §4.3.1): is the watermark success rate above
    the false-positive ("false watermark") rate ``fpr`` of a non-watermarked model?

    H0: each of the ``n`` watermarked queries is classified as the target class with
    probability ``fpr`` (what a clean model does); H1: with a higher probability. The
    paper treats the observed success rate as normal by the CLT (for n > 30) and
    compares it with ``fpr`` at 95% confidence, i.e. a one-sided z-test, which is an
    approximation of exactly this binomial tail; the normal approximation understates
    the upper tail when ``fpr`` is small (the binomial is right-skewed), so the exact
    tail used here is both valid for every n and never anti-conservative. ``fpr`` is
    taken as known: when it was itself estimated, pass an upper confidence bound (or,
    as the paper's Figure 4 does, the chance rate 1/K).
    """
    alpha = _level(alpha, "alpha")
    k, n = _counts(successes, n, "successes")
    p = _probability(fpr, "fpr")
    p_value = binomial_sf(k, n, p)
    return TestResult("success-rate", float(k), None, p_value, alpha, p_value < alpha,
                      {"n": n, "successes": k, "rate": k / n, "fpr": float(p),
                       "fpr_exact": _fraction_text(p), "exact": _exact_affordable(k, n, p)})


def _decimal_fraction(value: Any, what: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise MalformedInputError(f"{what} must be a number, got {type(value).__name__}")
    if isinstance(value, numbers.Rational):
        return Fraction(value.numerator, value.denominator)
    as_float = float(value)
    if not math.isfinite(as_float):
        raise MalformedInputError(f"{what} must be finite, got {value!r}")
    return Fraction(repr(as_float))  # the decimal the float was written as


def all_but_epsilon(matches: int, n: int, epsilon: float) -> bool:
    """Adi et al. 2018, §3 Verify: accept when the model's label equals the committed
    one for all but at most ⌊ε·n⌋ of the ``n`` items, i.e. ``n − matches <= ⌊ε·n⌋``.

    A float ``epsilon`` is read as the decimal it prints as (0.29 means 29/100, so
    ⌊0.29·100⌋ = 29, not the 28 its binary value would give); a Fraction is exact.
    """
    k, n = _counts(matches, n, "matches")
    eps = _decimal_fraction(epsilon, "epsilon")
    if not 0 <= eps <= 1:
        raise MalformedInputError(f"epsilon must be within [0, 1], got {epsilon!r}")
    return n - k <= math.floor(eps * n)


def hoeffding_bound(n: int, p0: Any, k: int) -> float:
    """The paper-style Hoeffding bound exp(−2n(k/n − p0)²) on P[X >= k], X ~ Bin(n, p0)
    (1.0 when k/n <= p0). For comparison only: :func:`binomial_sf` is exact."""
    k, n = _counts(k, n)
    gap = k / n - float(_probability(p0, "p0"))
    return 1.0 if gap <= 0.0 else math.exp(-2.0 * n * gap * gap)


# -- paired t-tests -------------------------------------------------------------------------
def _samples(values: Any, what: str, *, unit: bool = False) -> list[float]:
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__") \
            or not hasattr(values, "__iter__"):
        raise MalformedInputError(f"{what} must be a sequence of numbers")
    if not 2 <= len(values) <= MAX_SAMPLES:
        raise MalformedInputError(
            f"{what}: need between 2 and {MAX_SAMPLES} samples, got {len(values)}")
    out = []
    for i, v in enumerate(values):
        x = _real(v, f"{what}[{i}]")
        if unit and not 0.0 <= x <= 1.0:
            raise MalformedInputError(f"{what}[{i}] must be a probability in [0, 1], got {v!r}")
        out.append(x)
    return out


def _dyadic(values: list[float]) -> tuple[list[int], int]:
    """Integers V_i and e with values[i] == V_i / 2**e exactly (floats are dyadic)."""
    ratios = [v.as_integer_ratio() for v in values]
    e = max(den.bit_length() - 1 for _, den in ratios)
    return [num << (e - den.bit_length() + 1) for num, den in ratios], e


def _sqrt_ratio(num: int, den: int) -> float:
    """sqrt(num / den) for integers num >= 0 < den, within an ulp; inf when too large.

    Every step is a correctly rounded IEEE operation, so the result is the same on
    every platform.
    """
    if num == 0:
        return 0.0
    s = (num.bit_length() - den.bit_length()) // 2
    r = num / (den << (2 * s)) if s >= 0 else (num << (-2 * s)) / den  # in [1/4, 4]
    try:
        return math.ldexp(math.sqrt(r), s)
    except OverflowError:
        return math.inf


def _paired(xs: list[float], ys: list[float], shift: float, alpha: float, test: str,
            params: dict[str, Any]) -> TestResult:
    """One-sided one-sample t-test of d_i = x_i − y_i − shift, H1: mean(d) > 0, for x_i
    and y_i in [0, 1], with the bounds of :func:`paired_t_margin_test`.

    Mean and variance are computed exactly in integer arithmetic (every float is a
    dyadic rational) and rounded once, so the statistic is the same on every platform
    and suffers no cancellation.
    """
    m = len(xs)
    ints, e = _dyadic(xs + ys + [shift])
    big_x, big_y, big_s = ints[:m], ints[m:2 * m], ints[2 * m]
    diffs = [u - v - big_s for u, v in zip(big_x, big_y)]
    s1 = sum(diffs)
    s2 = sum(dv * dv for dv in diffs)
    q = m * s2 - s1 * s1  # = m (m−1) var · 4^e  >= 0, and 0 iff all d_i are equal
    raw_mean = (s1 + m * big_s) / (m << e)  # mean of x − y, before the shift; in [-1, 1]
    sd = _sqrt_ratio(q, (m * (m - 1)) << (2 * e))
    # The bound: each factor (1 + x_i − y_i)/(1 + shift) is >= 0 with mean <= 1 under H0,
    # so their product over independent pairs has mean <= 1 and, by Markov's inequality,
    # 1/product is a p-value whatever the law of the pairs (paired_t_margin_test).
    scale = 1 << e
    p_bound = _quotient(_truncated_power(scale + big_s, m),
                        _truncated_product([scale + u - v for u, v in zip(big_x, big_y)]))
    info = {**params, "m": m, "mean_difference": raw_mean, "sd_difference": sd,
            "p_bound": p_bound}
    if q == 0:
        # All differences equal some c: t is ±inf or 0/0, and the bound alone decides:
        # ((1 + shift)/(1 + shift + c))^m, Markov's inequality on each pair.
        c = Fraction(diffs[0], 1 << e)
        return TestResult(test, float(c), None, p_bound, alpha, p_bound < alpha,
                          {**info, "method": "bound"})
    # A positive variance is a t-test however small it is. Beyond the double range |t| is
    # the largest double (JSON has no inf), whose tail, an upper bound on the true one,
    # is 0.0 or 1.0 but for df = 1. p is the larger of the t tail and the bound.
    t_abs = min(_sqrt_ratio(s1 * s1 * (m - 1), q), sys.float_info.max)
    t = t_abs if s1 >= 0 else -t_abs
    p_t = t_sf(t, float(m - 1))
    p_value = max(p_t, p_bound)
    return TestResult(test, t, float(m - 1), p_value, alpha, p_value < alpha,
                      {**info, "p_t": p_t, "method": "t"})


def margin_floor(tau: float, m: int) -> float:
    """((1 + τ)/2)^m: the least p-value :func:`paired_t_margin_test` gives m pairs (its
    bound when every P_b − P_p is 1)."""
    base = (1 + Fraction(tau)) / 2
    return _quotient(_truncated_power(base.numerator, m), _truncated_power(base.denominator, m))


def min_pairs(tau: float, alpha: float) -> int:
    """The least m whose :func:`margin_floor` is below alpha: fewer pairs can never make
    a claim at level alpha (10 for τ = 0.25 and alpha = 0.01); MAX_SAMPLES + 1 where
    no claim the test takes could."""
    gap = float((1 - Fraction(tau)) / 2)       # 1 − base, exact before rounding
    estimate = math.log(alpha) / math.log1p(-gap) if gap > 0 else math.inf
    if estimate > MAX_SAMPLES:
        return MAX_SAMPLES + 1
    m = max(2, math.floor(estimate))
    while margin_floor(tau, m) >= alpha:       # exact, from the float estimate
        m += 1
    while m > 2 and margin_floor(tau, m - 1) < alpha:
        m -= 1
    return m


def _truncated_power(n: int, m: int) -> tuple[int, int]:
    """n^m for an integer n >= 1 as (mantissa, exponent) with _POWER_BITS leading bits.

    Exact powers grow to m times the bits of n (53 Mbit for a million pairs), so binary
    powering truncates each product in integer arithmetic: 2 log2(m) truncations leave a
    relative error below 2^-150, so the final double is within an ulp of the exact power
    (measured: correctly rounded in 1,999 of 2,000 random cases), and every step is an
    integer operation, the same on every platform (libm's pow may differ between them)."""
    out, out_e, base, e = 1, 0, n, 0
    while m:
        if m & 1:
            out, out_e = _truncate(out * base, out_e + e)
        m >>= 1
        if m:
            base, e = _truncate(base * base, 2 * e)
    return out, out_e


def _truncated_product(values: Sequence[int]) -> tuple[int, int]:
    """The product of non-negative integers as (mantissa, exponent), as above."""
    out, out_e = 1, 0
    for v in values:
        out, out_e = _truncate(out * v, out_e)
    return out, out_e


def _quotient(num: tuple[int, int], den: tuple[int, int]) -> float:
    """min(1, num / den) for (mantissa, exponent) pairs; 1.0 for a zero denominator (a
    factor of the bound that is unbounded: the pair proves nothing, nor does the product)."""
    (n, ne), (d, de) = num, den
    if d == 0:
        return 1.0
    magnitude = n.bit_length() - d.bit_length() + ne - de     # log2 of the ratio, ±1
    if magnitude > 1:
        return 1.0
    if magnitude < -1100:                     # below the least subnormal, 2^−1074, by far
        return 0.0
    return min(1.0, math.ldexp(n / d, ne - de))   # int / int is correctly rounded


_POWER_BITS = 192


def _truncate(n: int, e: int) -> tuple[int, int]:
    """n·2^e with n cut to its _POWER_BITS leading bits (rounded down)."""
    drop = n.bit_length() - _POWER_BITS
    return (n >> drop, e + drop) if drop > 0 else (n, e)


def paired_t_margin_test(benign: Sequence[float], watermarked: Sequence[float], *,
                         tau: float, alpha: float = 0.05) -> TestResult:
    """UBW (Li et al. 2022, §4.2, Proposition 1): pairwise one-sided t-test with margin τ.

    ``benign[i]`` is P_b, the suspect's predicted probability of the ground-truth label
    on a benign sample x_i, and ``watermarked[i]`` is P_p, the same on its poisoned
    version (both in [0, 1]). H0: mean(P_b − P_p) <= τ; H1: mean(P_b − P_p) > τ ("trained
    on the protected dataset with τ-certainty"). The statistic is Student's t of
    d_i = P_b,i − P_p,i − τ with m − 1 degrees of freedom; ``params["mean_difference"]``
    is the paper's confidence score ΔP = mean(P_b − P_p).

    The paper's t-test assumes normal differences, and on probabilities it can be far
    from its level: near-identical differences give t → ∞ (two pairs [1, 1e-7],
    [1, 2e-7] had p ≈ 1e-7; a null model flipping a quarter of its answers passed 6 % of
    2-item claims at α = 0.01). So the p-value is ``max(p_t, p_bound)`` (ours):

    * ``params["p_t"]``: the paper's t tail;
    * ``params["p_bound"]`` = min(1, ∏ (1 + τ)/(1 + P_b,i − P_p,i)): each factor's
      reciprocal is >= 0 with mean <= 1 under H0, so by Markov's inequality the bound is
      a valid p-value for any law of the pairs (a test by betting). It is never below
      ((1 + τ)/2)^m (:func:`margin_floor`: 0.39 for m = 2, 9.1e-3 for m = 10, 3.9e-21
      for m = 100 at τ = 0.25), and it asks more of a weak watermark than the t-test
      (20 pairs at P_b − P_p = 0.3: 0.46, where p_t is 1e-21); docs/statistics.md.

    Zero variance (every d_i equal to c: t is infinite or undefined, e.g. P_b = 1 and
    P_p = 0 on every sample) is legitimate evidence: ``method = "bound"``,
    ``statistic`` = c, ``df = None``, p = ``p_bound`` = ((1 + τ)/(1 + τ + c))^m (the sign
    test's 2^−m that this replaces holds for a null on the median only). Where |t| would
    exceed the double range (1.8e308) the statistic is ±1.8e308 and p_t its tail (0.0 or
    1.0, but ~1.8e-309 for df = 1).

    Raises :class:`MalformedInputError` for fewer than 2 pairs, unequal lengths,
    non-finite values, values or τ outside [0, 1], or alpha outside (0, 1).
    """
    alpha = _level(alpha, "alpha")
    b = _samples(benign, "benign", unit=True)
    w = _samples(watermarked, "watermarked", unit=True)
    if len(b) != len(w):
        raise MalformedInputError(
            f"benign and watermarked need the same number of samples ({len(b)} != {len(w)})")
    tau_f = _real(tau, "tau")
    if not 0.0 <= tau_f <= 1.0:
        raise MalformedInputError(f"tau must be within [0, 1], got {tau!r}")
    return _paired(b, w, tau_f, alpha, "paired-t-margin", {"tau": tau_f})


# -- Monte Carlo rank test --------------------------------------------------------------------
def _rank_count(key: Any, fresh: Any) -> tuple[int, int]:
    """(#{j: fresh[j] >= key}, K), compared exactly: floats, ints and Fractions are
    compared as the rationals they are, so no rounding creates or breaks a tie."""
    if isinstance(fresh, (str, bytes, dict)) or not hasattr(fresh, "__len__"):
        raise MalformedInputError("fresh must be a sequence of numbers")
    if not 1 <= len(fresh) <= MAX_SAMPLES:
        raise MalformedInputError(f"fresh: need between 1 and {MAX_SAMPLES} values")

    def real(value: Any, what: str) -> Any:
        if isinstance(value, Fraction):
            return value
        _real(value, what)            # a finite real number, not a bool
        return value

    k = real(key, "key")
    return sum(1 for i, v in enumerate(fresh) if real(v, f"fresh[{i}]") >= k), len(fresh)


def monte_carlo_rank_test(key: Any, fresh: Sequence[Any], *, alpha: float) -> TestResult:
    """The rank test at level ``alpha``: H0, the key's statistic is exchangeable with the
    K fresh ones, is rejected iff p <= alpha, compared as rationals. Under H0 the key's
    rank is uniform, so P(p <= alpha) <= alpha exactly (unlike the other tests here, the
    boundary belongs to the rejection region: p takes only the values n / (K + 1), and
    with K = 99 and alpha = 0.01 the smallest p is alpha itself). ``statistic`` is the
    number of fresh values at least the key's."""
    alpha = _level(alpha, "alpha")
    count, total = _rank_count(key, fresh)
    p_value = (1 + count) / (total + 1)
    return TestResult("monte-carlo-rank", float(count), None, p_value, alpha,
                      Fraction(1 + count, total + 1) <= Fraction(alpha), {"fresh": total})


# -- planning -------------------------------------------------------------------------------
_TIE = 1e-9  # relative band within which the fast path defers to binomial_sf


def _below(k: int, n: int, p: Fraction, threshold: float) -> bool:
    """P[X >= k] < threshold, decided as binomial_sf (and hence binomial_test) would."""
    if k > n:
        return 0.0 < threshold
    value = _sf_beta(k, n, p)
    if abs(value - threshold) <= _TIE * threshold:
        value = binomial_sf(k, n, p)
    return value < threshold


def _critical(n: int, p0: Fraction, alpha: float, start: int = 1) -> int:
    """Smallest k >= start with P0[X >= k] < alpha (n + 1 when there is none)."""
    lo, hi = max(start, 1), n + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if _below(mid, n, p0, alpha):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _ump_power(n: int, p0: Fraction, p1: Fraction, alpha: float) -> float:
    """Power at p1 of the randomized UMP level-alpha test: nondecreasing in n and an
    upper bound on the power of the exact non-randomized test."""
    c = _critical(n, p0, alpha)
    s0 = _sf_beta(c, n, p0) if c <= n else 0.0
    s1 = _sf_beta(c, n, p1) if c <= n else 0.0
    j = c - 1  # randomize on X = j; likelihood ratio P1[X=j] / P0[X=j]
    log_lr = (j * math.log(float(p1) / float(p0))
              + (n - j) * (math.log1p(-float(p1)) - math.log1p(-float(p0))))
    extra = max(alpha - s0, 0.0) * math.exp(min(log_lr, 700.0))
    return min(1.0, s1 + extra)


def binomial_sample_size(p0: Any, p1: Any, *, alpha: float = 0.01, power: float = 0.99,
                         max_n: int = 100_000) -> int:
    """Smallest n whose exact one-sided binomial test at level ``alpha`` (reject when
    ``binomial_sf(k, n, p0) < alpha``, as :func:`binomial_test`) has at least ``power``
    when the true match rate is ``p1`` > ``p0``.

    The power of the exact test is not monotone in n (it saw-tooths as the critical
    value steps), so the search scans n upward from the first n at which the
    randomized UMP test, whose power is monotone and an upper bound, reaches the target;
    each n is decided on its exact critical value.
    """
    alpha = _level(alpha, "alpha")
    power = _level(power, "power")
    q0, q1 = _probability(p0, "p0"), _probability(p1, "p1")
    if q1 <= q0:
        raise MalformedInputError(f"p1 must exceed p0 ({p1!r} <= {p0!r})")
    max_n = _integer(max_n, "max_n")
    if not 1 <= max_n <= MAX_TRIALS:
        raise MalformedInputError(f"max_n must be within [1, {MAX_TRIALS}], got {max_n}")
    target = power * (1.0 - _TIE)
    if _ump_power(max_n, q0, q1, alpha) < target:
        raise MalformedInputError(
            f"no sample size up to max_n={max_n} reaches power {power} at alpha {alpha}")
    lo, hi = 1, max_n
    while lo < hi:
        mid = (lo + hi) // 2
        if _ump_power(mid, q0, q1, alpha) >= target:
            hi = mid
        else:
            lo = mid + 1
    c = _critical(lo, q0, alpha)
    for n in range(lo, max_n + 1):
        while c <= n and not _below(c, n, q0, alpha):
            c += 1
        if c <= n and not _below(c, n, q1, power):
            return n
    raise MalformedInputError(
        f"no sample size up to max_n={max_n} reaches power {power} at alpha {alpha}")


def t_test_sample_size(effect_size: float, *, alpha: float = 0.05, power: float = 0.9,
                       max_n: int = 100_000) -> int:
    """Smallest number of pairs m for which the one-sided paired t-test at level
    ``alpha`` has at least ``power`` when the differences have standardized mean
    ``effect_size`` = mean/sd (Cohen's d_z): power = P[T' > t_{1−α, m−1}] with T'
    noncentral t, df = m − 1, noncentrality d·√m.

    This planning helper imports scipy (``scipy.stats.nct``) when called — the only
    function here that does; it is never on the verification path. The power is
    increasing in m, so the answer is found by bisection.
    """
    d = _real(effect_size, "effect_size")
    if not d > 0.0:
        raise MalformedInputError(f"effect_size must be positive, got {effect_size!r}")
    alpha = _level(alpha, "alpha")
    power = _level(power, "power")
    max_n = _integer(max_n, "max_n")
    if not 2 <= max_n <= MAX_SAMPLES:
        raise MalformedInputError(f"max_n must be within [2, {MAX_SAMPLES}], got {max_n}")
    try:
        from scipy import stats as sst
    except ImportError:  # pragma: no cover - scipy is a dev/planning dependency
        raise ClaimkitError("t_test_sample_size needs scipy (pip install scipy)") from None

    def reaches(m: int) -> bool:
        df = m - 1
        return float(sst.nct.sf(sst.t.isf(alpha, df), df, d * math.sqrt(m))) >= power

    if not reaches(max_n):
        raise MalformedInputError(
            f"no sample size up to max_n={max_n} reaches power {power} at alpha {alpha}")
    lo, hi = 2, max_n
    while lo < hi:
        mid = (lo + hi) // 2
        if reaches(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo
