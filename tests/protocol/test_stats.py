"""claimkit.protocol.stats against scipy.stats and exact rational references.

Tolerances: 1e-12 relative everywhere a reference is at least that good. scipy itself
drifts in the far binomial tail (binom.sf is off by up to ~4e-12 for n ~ 100 and
p-values ~ 1e-280, and by 1e-11 and more for n >= 1e7), so there the reference is an
exact Fraction/integer sum instead (see docs/statistics.md).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from scipy import stats as sst

from claimkit.errors import ClaimkitError, MalformedInputError
from claimkit.protocol import stats as S
from claimkit.protocol.stats import (
    EXACT_MAX_N,
    TestResult,
    all_but_epsilon,
    binomial_sample_size,
    binomial_sf,
    binomial_sf_is_exact,
    binomial_test,
    hoeffding_bound,
    margin_floor,
    min_pairs,
    paired_t_margin_test,
    success_rate_test,
    t_sf,
    t_test_sample_size,
)

REL = 1e-12
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def close(ours: float, ref: float, rel: float = REL) -> bool:
    return math.isclose(ours, float(ref), rel_tol=rel, abs_tol=0.0)


# -- exact references (independent of the module's binary splitting) --------------------------
def naive_tail(k: int, n: int, p: Fraction) -> Fraction:
    """P[X >= k] as an exact Fraction, term by term."""
    return sum((math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)),
               Fraction(0))


def loop_tail(k: int, n: int, p: Fraction) -> Fraction:
    """The same with an integer recurrence (fast enough for n in the thousands)."""
    a, b = p.numerator, p.denominator
    c = b - a
    term = math.comb(n, k) * a**k * c ** (n - k)
    total = term
    for i in range(k, n):
        term = term * (n - i) * a // ((i + 1) * c)
        total += term
    return Fraction(total, b**n)


def fixed_point_tail(k: int, n: int, p: Fraction, bits: int = 256) -> float:
    """Upper tail for k above the mean: exact pmf(k), then the terms' ratios summed in
    2^-bits fixed point until they vanish (relative error about terms · 2^-bits)."""
    a, b = p.numerator, p.denominator
    c = b - a
    pmf = Fraction(math.comb(n, k) * a**k * c ** (n - k), b**n)
    one = 1 << bits
    term, total, i = one, one, k
    while i < n and term:
        term = term * (n - i) * a // ((i + 1) * c)
        total += term
        i += 1
    return float(pmf * Fraction(total, one))


# -- the import stays cheap ----------------------------------------------------------------
def test_import_does_not_pull_scipy_or_numpy():
    code = ("import sys, claimkit.protocol.stats as s; "
            "s.binomial_test(30, 100, 0.1); s.paired_t_margin_test([1.0, 0.2, 0.4], [0.5, 0.2, 0.1], tau=0); "
            "s.t_sf(3.0, 7.5); "
            "assert not {'scipy', 'numpy', 'torch'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- binomial tail --------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 7, 30, 100, 257])
@pytest.mark.parametrize("p", [Fraction(1, 10), Fraction(1, 2), Fraction(1, 3), Fraction(0.37),
                               Fraction(999, 1000)])
def test_binomial_sf_is_the_exact_rational_rounded_once(n, p):
    for k in sorted({0, 1, n // 3, n // 2, n - 1, n} - {-1}):
        assert binomial_sf(k, n, p) == float(naive_tail(k, n, p))


def test_binomial_sf_exact_at_larger_n_and_float_p():
    cases = [(350, 2000, Fraction(1, 10)), (1000, 2000, Fraction(1, 2)),
             (80, 3000, Fraction(1, 50)), (700, 1500, 0.37), (200, 1500, 0.1)]
    for k, n, p in cases:
        assert binomial_sf_is_exact(k, n, p)
        assert binomial_sf(k, n, p) == float(loop_tail(k, n, Fraction(p)))


def test_fraction_p_is_exactly_one_tenth_and_float_p_is_the_double():
    exact = binomial_sf(30, 100, Fraction(1, 10))
    as_double = binomial_sf(30, 100, 0.1)
    assert exact == float(naive_tail(30, 100, Fraction(1, 10)))
    assert as_double == float(naive_tail(30, 100, Fraction(0.1)))
    assert exact != as_double and close(exact, as_double, 1e-13)


@pytest.mark.parametrize("n", [1, 5, 20, 100, 500, 2000, 5000])
@pytest.mark.parametrize("p", [0.5, 0.1, 0.01, 0.37, 0.9])
def test_binomial_sf_matches_scipy(n, p):
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    ks = {1, n, max(1, int(mean)), min(n, int(mean + 3 * sd) + 1), min(n, int(mean + 10 * sd) + 1),
          min(n, int(mean + 25 * sd) + 1)}
    for k in ks:
        ref = sst.binom.sf(k - 1, n, p)
        if ref < 1e-200:  # scipy drifts beyond (see module docstring)
            continue
        ours = binomial_sf(k, n, p)
        assert close(ours, ref), (k, n, p, ours, ref)
        assert close(ours, sst.binomtest(k, n, p, alternative="greater").pvalue)


@FAST
@given(n=st.integers(1, 400), data=st.data(),
       p=st.sampled_from([0.5, 0.1, 0.2, 0.01, 0.37, 0.73, 0.95]))
def test_binomial_sf_matches_scipy_property(n, data, p):
    k = data.draw(st.integers(0, n))
    ref = 1.0 if k == 0 else sst.binom.sf(k - 1, n, p)
    assume(ref > 1e-200)
    assert close(binomial_sf(k, n, p), ref)


def test_beta_path_agrees_with_exact_tails():
    """The incomplete-beta path (used above EXACT_MAX_N) against exact tails below it."""
    cases = [(k, n, p) for n, p in [(60, Fraction(1, 10)), (2000, Fraction(1, 2)),
                                    (2000, Fraction(1, 10)), (5000, Fraction(1, 3)),
                                    (20000, Fraction(1, 10)), (20000, Fraction(1, 1000))]
             for k in (1, int(n * p), int(n * p) + 1, int(n * p + 3 * math.sqrt(n)),
                       int(n * p + 12 * math.sqrt(n)), int(n * p + 40 * math.sqrt(n)), n)
             if 1 <= k <= n]
    for k, n, p in cases:
        exact = binomial_sf(k, n, p)
        assert binomial_sf_is_exact(k, n, p)
        if exact < 1e-300:
            continue
        assert close(S._sf_beta(k, n, p), exact, 5e-13), (k, n, p)


@pytest.mark.parametrize("n,p", [(50_000, Fraction(1, 2)), (100_000, Fraction(1, 10)),
                                 (150_000, Fraction(1, 2))])
def test_binomial_sf_beyond_the_exact_bound(n, p):
    sd = math.sqrt(n * p * (1 - p))
    for z in (0.3, 2.0, 6.0, 25.0):
        k = int(n * p + z * sd)
        assert not binomial_sf_is_exact(k, n, p)
        ours = binomial_sf(k, n, p)
        assert close(ours, fixed_point_tail(k, n, p), 5e-13), (k, n, z)
        assert close(ours, sst.binom.sf(k - 1, n, float(p)), 2e-12)
    k = int(n * p - 2 * sd)  # lower side, via the complement
    assert close(binomial_sf(k, n, p), sst.binom.sf(k - 1, n, float(p)))


@FAST
@given(n=st.integers(1, 3000), data=st.data(),
       p=st.sampled_from([Fraction(1, 10), Fraction(1, 2), Fraction(1, 100), Fraction(0.3)]))
def test_tail_decreases_as_matches_increase(n, data, p):
    k = data.draw(st.integers(0, n - 1))
    upper, lower = binomial_sf(k, n, p), binomial_sf(k + 1, n, p)
    assert lower <= upper  # correctly rounded values of a decreasing sequence
    if 0.0 < lower and upper <= 0.5:  # in the tail the step pmf(k) is far above rounding
        assert lower < upper
    assert hoeffding_bound(n, p, k) >= upper * (1 - 1e-12)


def test_tiny_tails_underflow_gracefully():
    assert binomial_sf(20000, 20000, Fraction(1, 10)) == 0.0
    assert 0.0 < binomial_sf(300, 300, Fraction(1, 10)) < 1e-299
    assert binomial_sf(300, 300, Fraction(1, 10)) == float(Fraction(1, 10**300))
    assert binomial_sf(0, 10, 0.5) == 1.0


# -- Student's t ----------------------------------------------------------------------------
@pytest.mark.parametrize("df", [1, 2, 3, 4.5, 9, 29, 100, 999, 12_345, 1e5, 1e6])
def test_t_sf_matches_scipy(df):
    for t in (-40.0, -3.0, -0.7, 0.02, 0.3, 0.999, 1.0, 1.001, 1.7, 2.0, 2.5, 4.0, 8.0, 20.0,
              60.0, 300.0, 1e4, 1e8):
        ref = sst.t.sf(t, df)
        if ref < 1e-300:
            continue
        assert close(t_sf(t, df), ref), (t, df, t_sf(t, df), ref)


@FAST
@given(t=st.floats(-1e6, 1e6, allow_nan=False), df=st.floats(0.5, 1e7))
def test_t_sf_matches_scipy_property(t, df):
    ref = sst.t.sf(t, df)
    assume(ref > 1e-300 and abs(t) >= 0.01)  # scipy loses ~1e-9 absolute near t = 0
    assert close(t_sf(t, df), ref)


def test_t_sf_closed_forms():
    # df = 1 (Cauchy): P[T > t] = atan(1/t)/pi for t > 0; df = 2: (1 - t/sqrt(t^2+2))/2.
    for t in (1e-300, 1e-120, 1e-20, 1e-8, 1e-3, 0.5, 1.0, 3.0, 1e3, 1e8, 1e149, 1e151, 1e200,
              1e308):
        assert close(t_sf(t, 1), math.atan(1 / t) / math.pi, 1e-13), t
        assert close(t_sf(-t, 1), 1 - math.atan(1 / t) / math.pi, 1e-15), t
    for t in (1e-120, 1e-8, 1e-3, 0.5, 1.0, 3.0, 1e3, 1e7, 1e149, 1e151):
        r = math.hypot(t, math.sqrt(2))
        assert close(t_sf(t, 2), 1 / (r * (r + t)), 1e-13), t  # = (1 - t/r)/2, no cancellation
    assert t_sf(0.0, 5) == 0.5 and t_sf(-0.0, 5) == 0.5
    assert t_sf(1e300, 50) == 0.0 and t_sf(-1e300, 50) == 1.0


@FAST
@given(t=st.floats(-50, 50), dt=st.floats(1e-3, 10), df=st.floats(1, 1e4))
def test_t_sf_is_decreasing(t, dt, df):
    assert t_sf(t + dt, df) <= t_sf(t, df)


# -- paired t-tests -------------------------------------------------------------------------
def exact_t(d: list[Fraction]) -> float:
    """Student's t of d computed exactly and rounded at the end (inf if it overflows)."""
    m = len(d)
    mean = sum(d) / m
    var = sum((v - mean) ** 2 for v in d) / (m - 1)
    t2 = mean * mean * m / var
    if t2 == 0:
        return 0.0
    # t² = r · 4^k with r in [1/4, 4): only t itself is rounded into the double range, so
    # a t near the top (t² would overflow) or in the subnormals (t² would underflow) is
    # still right.
    k = (t2.numerator.bit_length() - t2.denominator.bit_length()) // 2
    try:
        return math.copysign(math.ldexp(math.sqrt(float(t2 / Fraction(4) ** k)), k), mean)
    except OverflowError:
        return math.copysign(math.inf, mean)


SAMPLES = [
    ([0.9, 0.8, 0.95, 0.7, 0.85], [0.1, 0.3, 0.2, 0.25, 0.4]),
    ([0.52, 0.49, 0.51, 0.50, 0.53, 0.48, 0.47, 0.55], [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]),
    ([1.0, 0.99, 0.97, 1.0], [0.2, 0.01, 0.1, 0.6]),
    ([i / 97 % 1 for i in range(1, 200)], [i / 89 % 1 for i in range(1, 200)]),
    ([0.3, 0.1], [0.2, 0.25]),
]


def exact_bound(x, y, tau) -> float:
    """min(1, prod (1 + tau)/(1 + x_i - y_i)) in exact arithmetic, rounded once."""
    out = Fraction(1)
    for a, b in zip(x, y):
        if Fraction(1) + Fraction(a) - Fraction(b) == 0:
            return 1.0
        out *= (1 + Fraction(tau)) / (1 + Fraction(a) - Fraction(b))
    return 1.0 if out >= 1 else float(out)


@pytest.mark.parametrize("x,y", SAMPLES)
def test_margin_zero_is_the_papers_paired_t_test(x, y):
    ours = paired_t_margin_test(x, y, tau=0.0)
    ref = sst.ttest_rel(x, y, alternative="greater")
    assert ours.params["method"] == "t"
    assert close(ours.statistic, ref.statistic) and ours.df == float(ref.df)
    assert close(ours.params["p_t"], ref.pvalue)        # the paper's p, reported
    bound = ours.params["p_bound"]
    assert bound == pytest.approx(exact_bound(x, y, 0.0), rel=1e-15)
    assert close(ours.p_value, max(ref.pvalue, bound))
    assert ours.reject_null == (max(ref.pvalue, bound) < 0.05)


@pytest.mark.parametrize("tau", [0.0, 0.1, 0.25, 0.5])
@pytest.mark.parametrize("x,y", SAMPLES)
def test_margin_test_matches_ttest_1samp_on_shifted_differences(x, y, tau):
    ours = paired_t_margin_test(x, y, tau=tau)
    diffs = [Fraction(a) - Fraction(b) - Fraction(tau) for a, b in zip(x, y)]
    ref = sst.ttest_1samp([a - b - tau for a, b in zip(x, y)], 0.0, alternative="greater")
    assert ours.test == "paired-t-margin" and ours.params["tau"] == tau
    assert close(ours.statistic, exact_t(diffs), 1e-15)
    assert close(ours.statistic, ref.statistic)
    assert close(ours.params["p_t"], ref.pvalue)
    assert ours.params["p_bound"] == pytest.approx(exact_bound(x, y, tau), rel=1e-15)
    assert close(ours.p_value, max(ref.pvalue, ours.params["p_bound"]))
    assert close(ours.params["mean_difference"], sum(a - b for a, b in zip(x, y)) / len(x))


probabilities = st.floats(0.0, 1.0, allow_nan=False)


def student_sf(t: float, df: int) -> float:
    """Student's upper tail: for df = 1 the Cauchy closed form arccot(t)/π, which atan2
    gives to a few ulps everywhere (scipy's ``t.sf(-2.9e-8, 1)`` is off by 5e-10
    relative), else scipy's."""
    return math.atan2(1.0, t) / math.pi if df == 1 else float(sst.t.sf(t, df))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy on nearly equal samples
@FAST
@given(pairs=st.lists(st.tuples(probabilities, probabilities), min_size=2, max_size=40),
       tau=st.sampled_from([0.0, 0.25]))
@example(pairs=[(0.0, 0.0), (0.0, 1.5496115702689772e-167)], tau=0.25)  # t = -3.2e166
@example(pairs=[(0.0, 0.75), (0.75, 1.1125369292536007e-308)], tau=0.0)   # t = -7.4e-309
@example(pairs=[(0.0, 1.0), (1.0, 5.8037794198118406e-08)], tau=0.0)  # df 1, t = -2.9e-8
@example(pairs=[(1.0, 0.0), (1.0, 5e-324)], tau=0.25)  # |t| ~ 3e323 overflows
def test_paired_t_property(pairs, tau):
    x, y = [a for a, _ in pairs], [b for _, b in pairs]
    diffs = [Fraction(a) - Fraction(b) - Fraction(tau) for a, b in pairs]
    assume(len(set(diffs)) > 1)
    ours = paired_t_margin_test(x, y, tau=tau)
    t = exact_t(diffs)
    assert ours.params["method"] == "t"  # the sign test is for identical differences only
    bound = ours.params["p_bound"]
    assert bound == pytest.approx(exact_bound(x, y, tau), rel=1e-15)
    assert ours.p_value >= bound >= margin_floor(tau, len(pairs)) * (1 - 1e-15)
    if math.isinf(t):  # differences equal but for ~1e-308: |t| overflows
        assert ours.statistic == math.copysign(sys.float_info.max, t)
        assert ours.p_value == max(t_sf(ours.statistic, len(pairs) - 1), bound)
        return
    assert close(ours.statistic, t, 1e-15)  # the statistic is exact up to one rounding
    ref_p = student_sf(ours.statistic, len(pairs) - 1)
    if ref_p > 1e-300:
        assert close(ours.p_value, max(ref_p, bound))
    scipy_t = sst.ttest_1samp([a - b - tau for a, b in pairs], 0.0).statistic
    # where scipy's float arithmetic is sound (its t.sf is not, near 0.5 for df = 1)
    if len(pairs) > 2 and close(float(scipy_t), t, 1e-14):
        ref = sst.ttest_1samp([a - b - tau for a, b in pairs], 0.0, alternative="greater")
        if ref.pvalue > 1e-300:
            assert close(ours.p_value, max(ref.pvalue, bound), 1e-11)


def test_zero_variance_gets_the_markov_bound():
    # all P_b − P_p − τ = c > 0: P[d >= c] <= (1 + τ)/(1 + τ + c) under any null with mean <= τ
    r = paired_t_margin_test([1.0] * 20, [0.0] * 20, tau=0.25)
    assert r.params["method"] == "bound" and r.df is None and r.statistic == 0.75
    assert r.p_value == float(Fraction(5, 8) ** 20) == r.params["p_bound"] and r.reject_null
    assert r.p_value == margin_floor(0.25, 20)            # every P_b − P_p = 1: the floor
    r = paired_t_margin_test([0.75] * 30, [0.25] * 30, tau=0.25)          # c = 0.25
    assert r.p_value == float(Fraction(5, 6) ** 30) > margin_floor(0.25, 30)
    r = paired_t_margin_test([0.3] * 5, [0.3] * 5, tau=0.0)
    assert r.params["method"] == "bound" and r.statistic == 0.0 and r.p_value == 1.0
    assert not r.reject_null
    r = paired_t_margin_test([0.5] * 4, [0.4] * 4, tau=0.25)  # d = -0.15 everywhere
    assert r.p_value == 1.0 and r.statistic == float(Fraction(0.5) - Fraction(0.4) - Fraction(0.25))
    assert paired_t_margin_test([1.0] * 1700, [0.0] * 1700, tau=0.0).p_value == 0.0  # underflows
    # x - y are not all equal as reals, though float subtraction would round them alike
    assert paired_t_margin_test([0.1, 0.2, 0.3], [0.0, 0.1, 0.2], tau=0.0).params["method"] == "t"


def test_the_bound_holds_where_the_sign_test_did_not():
    """Under a null with mean(P_b − P_p) = τ exactly (P_b − P_p = 1 with probability
    0.75, else 0), all ten pairs at 1 happen 5.6 % of the time; the sign test gave them
    p = 2^-10 and accepted at α = 1e-3 (56 × α). The bound gives (1.75/2)^10 = 0.26."""
    r = paired_t_margin_test([1.0] * 10, [0.0] * 10, tau=0.75, alpha=1e-3)
    assert r.p_value == float(Fraction(7, 8) ** 10) and not r.reject_null
    assert 0.75 ** 10 <= r.p_value


def test_near_identical_differences_get_the_bound_not_the_t_tail():
    """A review: with a tiny positive variance t → ∞, and a floor ((1 + τ)/2)^m alone
    let a null (P_b − P_p = 0.5 + jitter with probability 5/6, else −1; mean τ) pass
    16 % of claims of 10 pairs at α = 0.01. The bound, the product of the pairs' own
    factors, is valid for any null: nearly identical pairs get nearly their Markov bound."""
    import random
    rng, accepted = random.Random(1), 0
    for _ in range(2000):
        pairs = [(0.9, 0.4 + rng.uniform(0, 1e-6)) if rng.random() < 5 / 6 else (0.0, 1.0)
                 for _ in range(10)]
        r = paired_t_margin_test([b for b, _ in pairs], [w for _, w in pairs], tau=0.25,
                                 alpha=0.01)
        accepted += r.reject_null
    assert accepted <= 2000 * 0.01
    tie = paired_t_margin_test([1.0] * 20, [0.25] * 20, tau=0.25, alpha=0.001)
    near = paired_t_margin_test([1.0] * 20, [0.25] * 19 + [0.2500001], tau=0.25, alpha=0.001)
    assert near.params["method"] == "t" and near.params["p_t"] < 1e-100
    assert near.p_value >= tie.p_value and not near.reject_null     # weaker: never smaller


@pytest.mark.parametrize("m", [2, 3, 10, 20, 100])
def test_no_sample_of_m_pairs_gets_a_p_below_the_floor(m):
    """((1 + τ)/2)^m is the probability of the most extreme sample under a null with mean
    τ, so no valid test gives any sample less; near-identical differences had t → ∞."""
    floor = margin_floor(0.25, m)
    assert floor == float(Fraction(5, 8) ** m)
    for pp in ([1e-7 * (i + 1) for i in range(m)], [0.0] * (m - 1) + [5e-324],
               [0.01 * (i % 2) for i in range(m)]):
        r = paired_t_margin_test([1.0] * m, pp, tau=0.25, alpha=0.01)
        assert r.params["method"] == "t" and r.p_value == r.params["p_bound"] >= floor
        assert r.p_value == pytest.approx(floor, rel=0.02 * m)


def test_min_pairs_is_the_least_claim_the_floor_lets_through():
    assert [min_pairs(0.25, a) for a in (0.01, 1e-10)] == [10, 49]
    for tau, alpha in [(0.25, 0.01), (0.35, 0.01), (0.5, 1e-6), (0.99, 1e-12)]:
        m = min_pairs(tau, alpha)
        assert margin_floor(tau, m) < alpha <= margin_floor(tau, m - 1)
    # τ so close to 1 that no claim the test takes reaches alpha (was a ZeroDivisionError,
    # and a loop of hours): one more than the largest sample
    assert min_pairs(0.9999999999999999, 0.01) == min_pairs(0.999999999999, 0.01) == 1_000_001


def test_nearly_identical_differences_keep_the_t_test_so_p_never_rises():
    """Differences equal but for 5e-324 have a positive variance: |t| ~ 1e323 overflows,
    and the statistic is the largest double; p is its tail or the bound, whichever is
    larger. Stronger evidence never gets a larger p."""
    weaker = paired_t_margin_test([1.0] * 12, [0.0] * 11 + [1e-300], tau=0.25, alpha=0.01)
    stronger = paired_t_margin_test([1.0] * 12, [0.0] * 11 + [5e-324], tau=0.25, alpha=0.01)
    exact = paired_t_margin_test([1.0] * 12, [0.0] * 12, tau=0.25, alpha=0.01)
    assert weaker.params["method"] == stronger.params["method"] == "t"
    assert stronger.statistic == sys.float_info.max and stronger.df == 11.0
    assert exact.p_value <= stronger.p_value <= weaker.p_value
    assert weaker.p_value == pytest.approx(float(Fraction(5, 8) ** 12), rel=1e-12)
    assert stronger.reject_null
    r = paired_t_margin_test([0.0, 0.0], [0.0, 5e-324], tau=0.25)  # mean below the margin
    assert (r.params["method"], r.statistic, r.p_value) == ("t", -sys.float_info.max, 1.0)
    assert not r.reject_null
    d = stronger.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d


def test_results_are_plain_json():
    results = [
        binomial_test(28, 100, Fraction(1, 10), alpha=1e-6),
        success_rate_test(30, 100, 0.1),
        paired_t_margin_test([0.9, 0.8, 0.7], [0.1, 0.2, 0.4], tau=0.0),
        paired_t_margin_test([1.0] * 3, [0.0] * 3, tau=0.5),
        binomial_test(20000, 20000, Fraction(1, 2)),
    ]
    for r in results:
        assert isinstance(r, TestResult)
        d = r.to_dict()
        assert json.loads(json.dumps(d, allow_nan=False)) == d
        assert set(d) == {"test", "statistic", "df", "p_value", "alpha", "reject_null", "params"}
        with pytest.raises(AttributeError):
            r.p_value = 0.5  # type: ignore[misc]


# -- binomial tests --------------------------------------------------------------------------
def test_binomial_test_fields():
    r = binomial_test(28, 100, Fraction(1, 10), alpha=1e-6)
    assert r.test == "binomial" and r.statistic == 28.0 and r.df is None
    assert r.p_value == float(naive_tail(28, 100, Fraction(1, 10))) and r.reject_null
    assert r.params == {"n": 100, "k": 28, "p0": 0.1, "p0_exact": "1/10", "exact": True}
    assert not binomial_test(27, 100, Fraction(1, 10), alpha=1e-6).reject_null
    big = binomial_test(30_000, 100_000, Fraction(1, 10))
    assert big.params["exact"] is False and big.reject_null


def test_success_rate_test():
    r = success_rate_test(19, 100, Fraction(1, 10))
    assert r.test == "success-rate" and r.params["rate"] == 0.19
    assert r.p_value == float(naive_tail(19, 100, Fraction(1, 10)))
    assert close(r.p_value, sst.binomtest(19, 100, 0.1, alternative="greater").pvalue)
    assert r.reject_null and not success_rate_test(14, 100, 0.1).reject_null



def test_a_p_value_equal_to_alpha_does_not_reject():
    """``reject_null`` is p < alpha, strictly, for the binomial, success-rate and bound
    tests: a p-value exactly at the level is not significant at it (inputs whose p-value
    is a power of two, so it equals alpha exactly)."""
    cases = [binomial_test(1, 1, Fraction(1, 2), alpha=0.5),
             success_rate_test(2, 2, Fraction(1, 2), alpha=0.25),
             paired_t_margin_test([1.0, 1.0], [0.0, 0.0], tau=0.0, alpha=0.25)]
    assert cases[2].params["method"] == "bound"
    for r in cases:
        assert r.p_value == r.alpha and not r.reject_null, r.test
    assert binomial_test(1, 1, Fraction(1, 2), alpha=0.5000001).reject_null

def test_all_but_epsilon():
    assert all_but_epsilon(90, 100, 0.1) and not all_but_epsilon(89, 100, 0.1)
    assert all_but_epsilon(71, 100, 0.29)  # 0.29 means 29/100, not the double below it
    assert not all_but_epsilon(70, 100, 0.29)
    assert all_but_epsilon(5, 5, 0) and not all_but_epsilon(4, 5, 0)
    assert all_but_epsilon(0, 7, 1.0) and all_but_epsilon(2, 3, Fraction(1, 3))


def test_hoeffding_is_looser_than_exact():
    n, p = 100, Fraction(1, 10)
    k_exact = next(k for k in range(n + 1) if binomial_sf(k, n, p) < 1e-6)
    k_hoeff = next(k for k in range(n + 1) if hoeffding_bound(n, p, k) < 1e-6)
    assert (k_exact, k_hoeff) == (28, 37)  # the numbers quoted in docs/statistics.md
    assert hoeffding_bound(100, 0.1, 5) == 1.0


# -- planning helpers -----------------------------------------------------------------------
def brute_power(n: int, p0, p1, alpha: float) -> float:
    k = next((k for k in range(1, n + 1) if binomial_sf(k, n, p0) < alpha), None)
    return 0.0 if k is None else binomial_sf(k, n, p1)


@pytest.mark.parametrize("p0,p1,alpha,power", [
    (Fraction(1, 10), Fraction(1, 2), 0.01, 0.99),
    (Fraction(1, 10), 0.3, 0.01, 0.99),
    (Fraction(1, 10), 0.2, 1e-6, 0.9),
    (Fraction(1, 100), 0.05, 0.05, 0.8),
    (Fraction(1, 2), 0.9, 0.001, 0.95),
])
def test_binomial_sample_size_is_the_smallest(p0, p1, alpha, power):
    n = binomial_sample_size(p0, p1, alpha=alpha, power=power)
    assert brute_power(n, p0, p1, alpha) >= power
    assert all(brute_power(m, p0, p1, alpha) < power for m in range(1, n))  # sawtooth too


def test_binomial_sample_size_large():
    n = binomial_sample_size(Fraction(1, 10), 0.12, alpha=0.01, power=0.99)
    assert brute_power(n, Fraction(1, 10), 0.12, 0.01) >= 0.99
    assert brute_power(n - 1, Fraction(1, 10), 0.12, 0.01) < 0.99
    with pytest.raises(MalformedInputError, match="max_n"):
        binomial_sample_size(Fraction(1, 10), 0.12, max_n=1000)


@pytest.mark.parametrize("d,alpha,power", [(0.2, 0.05, 0.9), (0.5, 0.01, 0.99), (1.5, 0.05, 0.8),
                                           (3.0, 0.05, 0.9)])
def test_t_test_sample_size_is_the_smallest(d, alpha, power):
    m = t_test_sample_size(d, alpha=alpha, power=power)

    def achieved(m: int) -> float:
        return sst.nct.sf(sst.t.isf(alpha, m - 1), m - 1, d * math.sqrt(m))

    assert achieved(m) >= power
    assert m == 2 or achieved(m - 1) < power


# -- malformed input ------------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda: binomial_sf(1, 0, 0.5),
    lambda: binomial_sf(-1, 5, 0.5),
    lambda: binomial_sf(6, 5, 0.5),
    lambda: binomial_sf(1.0, 5, 0.5),
    lambda: binomial_sf(True, 5, 0.5),
    lambda: binomial_sf(1, 5, 0.0),
    lambda: binomial_sf(1, 5, 1.0),
    lambda: binomial_sf(1, 5, 1.5),
    lambda: binomial_sf(1, 5, math.nan),
    lambda: binomial_sf(1, 5, "0.5"),
    lambda: binomial_sf(1, 10**13, 0.5),
    lambda: binomial_test(3, 10, 0.1, alpha=0.0),
    lambda: binomial_test(3, 10, 0.1, alpha=1.0),
    lambda: binomial_test(3, 10, 0.1, alpha=math.nan),
    lambda: binomial_test(11, 10, 0.1),
    lambda: binomial_test(3, 10, -0.1),
    lambda: success_rate_test(3, 0, 0.1),
    lambda: success_rate_test(3, 10, 1.0),
    lambda: all_but_epsilon(3, 10, 1.5),
    lambda: all_but_epsilon(3, 10, math.inf),
    lambda: all_but_epsilon(11, 10, 0.1),
    lambda: t_sf(math.nan, 3),
    lambda: t_sf(math.inf, 3),
    lambda: t_sf(1.0, 0),
    lambda: t_sf(1.0, -2),
    lambda: t_sf(1.0, math.inf),
    lambda: t_sf(1.0, 1e-3),
    lambda: t_sf(1.0, 1e16),
    lambda: paired_t_margin_test([1.0], [0.5], tau=0.0),
    lambda: paired_t_margin_test([1.0, 2.0], [0.5], tau=0.0),
    lambda: paired_t_margin_test([1.0, math.nan], [0.5, 0.1], tau=0.0),
    lambda: paired_t_margin_test([1.0, math.inf], [0.5, 0.1], tau=0.0),
    lambda: paired_t_margin_test([1.0, "2"], [0.5, 0.1], tau=0.0),
    lambda: paired_t_margin_test("12", "34", tau=0.0),
    lambda: paired_t_margin_test([1.0, 2.0], [0.5, 0.1], alpha=2, tau=0.0),
    lambda: paired_t_margin_test([1.7e308, 1.7e308, 0.0], [-1.7e308, -1.7e308, 0.0], tau=0.0),
    lambda: paired_t_margin_test([0.9, 0.8], [0.1, 0.2], tau=1.5),
    lambda: paired_t_margin_test([0.9, 0.8], [0.1, 0.2], tau=math.nan),
    lambda: paired_t_margin_test([0.9, 1.8], [0.1, 0.2], tau=0.1),
    lambda: paired_t_margin_test([0.9, 0.8, 0.7], [0.1, 0.2], tau=0.1),
    lambda: binomial_sample_size(0.5, 0.1),
    lambda: binomial_sample_size(0.1, 0.5, power=1.0),
    lambda: binomial_sample_size(0.0, 0.5),
    lambda: t_test_sample_size(0.0),
    lambda: t_test_sample_size(-1.0),
    lambda: t_test_sample_size(0.5, power=0.0),
    lambda: t_test_sample_size(0.01, max_n=50),
    lambda: hoeffding_bound(10, 0.1, 11),
])
def test_malformed_inputs(call):
    with pytest.raises(MalformedInputError):
        call()


def test_errors_belong_to_the_claimkit_tree():
    with pytest.raises(ClaimkitError, match="p0 must be within"):
        binomial_test(3, 10, 2)
    with pytest.raises(MalformedInputError, match="same number of samples"):
        paired_t_margin_test([1.0, 0.2, 0.3], [1.0, 0.2], tau=0.0)


def test_exact_bound_is_documented():
    assert binomial_sf_is_exact(EXACT_MAX_N // 2, EXACT_MAX_N, Fraction(1, 10))
    assert not binomial_sf_is_exact(EXACT_MAX_N // 2, EXACT_MAX_N + 1, Fraction(1, 10))
    assert binomial_sf_is_exact(3000, 7142, 0.1) and not binomial_sf_is_exact(3000, 7143, 0.1)


# -- Monte Carlo rank test (UBW-C's fresh triggers) ---------------------------------------------
def rank_p(key, fresh):
    return S.monte_carlo_rank_test(key, fresh, alpha=0.5).p_value


def test_rank_p_counts_fresh_values_at_least_the_keys():
    assert rank_p(0.5, [0.1, 0.2, 0.3]) == 1 / 4           # the key is largest
    assert rank_p(0.5, [0.6, 0.2, 0.7]) == 3 / 4
    assert rank_p(0.0, [0.6, 0.2, 0.7]) == 1.0             # the key is smallest
    assert rank_p(0.5, [0.9]) == 1.0 and rank_p(0.9, [0.5]) == 0.5


def test_rank_p_ties_count_against_the_key():
    assert rank_p(0.5, [0.5, 0.5, 0.1]) == 3 / 4
    assert rank_p(1, [1.0]) == 1.0                        # 1 and 1.0 tie
    # Exact comparison: a Fraction just below the key is no tie, one equal to it is.
    key = Fraction(1, 3)
    assert rank_p(key, [Fraction(1, 3) - Fraction(1, 10**30)]) == 0.5
    assert rank_p(key, [Fraction(2, 6)]) == 1.0


def test_rank_test_accepts_at_p_equal_to_alpha_compared_as_rationals():
    fresh = [i / 100 for i in range(99)]                               # all below the key
    r = S.monte_carlo_rank_test(1.0, fresh, alpha=0.01)
    assert (r.test, r.p_value, r.reject_null, r.statistic, r.df) == (
        "monte-carlo-rank", 0.01, True, 0.0, None)
    assert r.params == {"fresh": 99}
    assert not S.monte_carlo_rank_test(0.98, fresh, alpha=0.01).reject_null   # a tie: p = 0.02
    # 1/3 rounds down to the double 0.333…; exactly, 1/3 exceeds that alpha.
    assert not S.monte_carlo_rank_test(1.0, [0.0, 0.0], alpha=1 / 3).reject_null
    assert S.monte_carlo_rank_test(1.0, [0.0, 0.0], alpha=0.34).reject_null


@pytest.mark.parametrize("key, fresh", [(0.5, []), (0.5, "ab"), (True, [0.1]),
                                        (0.5, [float("nan")]), (float("inf"), [0.1])])
def test_rank_p_refuses_what_is_not_numbers(key, fresh):
    with pytest.raises(MalformedInputError):
        rank_p(key, fresh)
