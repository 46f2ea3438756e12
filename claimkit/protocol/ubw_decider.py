"""The pure half of Verify for the UBW dataset watermarks (``ubw-p``, ``ubw-c``).

Li et al. 2022, §4.2, Proposition 1: with P_b and P_p the suspect's probability of the
ground-truth label on a benign image and on its triggered version, the suspect is held
to have been trained on the protected data set (with τ-certainty) iff the one-sided
pairwise t-test rejects H0: P_b ≤ P_p + τ in favour of H1: P_b > P_p + τ at level α.

* Items (committed at KeyGen, protocol_spec/ubw.md): ``{"image": base64 uint8 C×H×W,
  "label": class, "triggered": base64 uint8 C×H×W}``.
* Query of an opened item: the same three fields, checked.
* Answer to a query: ``[P_b, P_p]``, two numbers in [0, 1].
* Decision: :func:`~claimkit.protocol.stats.paired_t_margin_test` on the m pairs with
  the key's τ and α; the evidence lists every pair, so an arbiter recomputes the
  p-value from the bundle alone. ``details.delta_p`` is the paper's confidence score
  ΔP = mean(P_b − P_p).

Public parameters (verification key): ``num_classes``, ``input_shape`` [C, H, W],
``tau`` in [0, 1) (0.25, §5.3), ``alpha`` in (0, 0.5] (0.01), ``m`` (pairs a claim
should open, 100, App. C.2; informative, the test uses every opened item).

Fresh triggers (``ubw-c`` only, opt-in: ``fresh`` = K > 0 in the key; ours, not the
paper's; docs/proposals/ubw-c-key-specific-test.md, step 1). Prop. 1 alone can accept
an honest other owner's claim on a suspect trained on a release of the same kind, where
any square costs the suspect confidence. The key's square is then also ranked among K
squares drawn from the claim's challenge seed (:func:`fresh_patterns`) and pasted at
each item's place: with D(π) = mean_i(P_b,i − P_p,i(π)), p_rank = (1 + #{j: D_j ≥
D_key}) / (K + 1), exact for a model that never saw the key. The claim is accepted iff
both tests accept; the evidence's p-value is the larger (an intersection–union test).
Items then carry the square's ``place`` and the key its ``side``, and every opened item
must show one and the same black-and-white square there and nothing else changed
(:func:`check_square`): an owner who could commit any "triggered" image would beat
fresh squares at will. For a warping field (the key has ``grid`` and ``warp_strength``
instead of ``side``) the items carry the key's ``field`` instead of a triggered image,
the same in every opened item and of the fresh fields' scale, and the answerer warps
each image by it and by K fields drawn from the seed (:func:`fresh_fields`) alike.

Drawn triggers (``ubw-c`` with fresh triggers, opt-in: ``trigger_commitment`` in the
key; the proposal's step 2). The rank test is exact only if the key's trigger was drawn
like the fresh ones, and an owner who tries candidate triggers on clean models of their
own could pick one that costs every model more than most. A drawn key's trigger is
therefore fresh trigger 0 of a seed from the log (:func:`drawn_trigger`, the seed
:func:`claimkit.challenge.trigger_seed`), fixed by a trigger-draw entry that the registry
takes once per key: the items carry no trigger (``{"image", "label", "place"}`` for
squares, ``{"image", "label"}`` for fields) and :meth:`UBWDecider.queries` puts the
drawn one in, so the queries are those of an undrawn key with fresh triggers.
"""

from __future__ import annotations

import hashlib
import math
import struct
import sys
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Sequence

from ..commitments import ItemOpening
from ..errors import MalformedInputError
from ..wire import Fields, b64decode, b64encode
from .keys import VerificationKey
from .scheme import (Evidence, check_answer_count, check_min_opened, check_reachable,
                     read_shape, register_decider)
from .stats import TestResult, monte_carlo_rank_test, paired_t_margin_test

__all__ = ["FIELD_DOMAIN", "FRESH_DOMAIN", "MAX_FRESH", "Item", "QuerySpace", "UBWDecider",
           "check_square", "drawn_trigger", "fresh_fields", "fresh_patterns", "min_fresh",
           "paste_square", "read_item", "read_queries"]

FRESH_DOMAIN = b"claimkit/ubw-fresh/v1\n"
FIELD_DOMAIN = b"claimkit/ubw-fresh-field/v1\n"
MAX_FRESH = 10_000
_WHITE = bytes.maketrans(b"01", b"\x00\xff")


def min_fresh(alpha: float) -> int:
    """The least K with 1/(K + 1) <= alpha, in exact arithmetic: fewer fresh triggers and
    p_rank could never reach alpha (99 for alpha = 0.01; a subnormal alpha gives a K far
    past MAX_FRESH rather than an overflow)."""
    return max(1, math.ceil(1 / Fraction(alpha)) - 1)


def fresh_patterns(seed: bytes, side: int, count: int) -> list[bytes]:
    """The ``count`` fresh squares of a claim (protocol_spec/ubw.md §Fresh triggers): each
    ``side``·``side`` bytes, row-major, 0 (black) or 255 (white).

    Pattern j, attempt a: the bits of SHA-256(FRESH_DOMAIN || seed || uint32_be(j) ||
    uint32_be(a) || uint32_be(b)) for blocks b = 0, 1, …, most significant bit first;
    pixel (r, c) is white iff bit r·side + c is 1. A square of one colour is redrawn with
    a + 1, so each pattern is uniform over the two-colour squares, make_patch's
    distribution, independently of the others and of the key's own: what makes the
    rank test exact."""
    if side < 2:
        raise MalformedInputError(f"fresh triggers need a side of at least 2, got {side}")
    n = side * side
    blocks = -(-n // 256)
    out = []
    for j in range(count):
        for attempt in range(1 << 32):
            head = FRESH_DOMAIN + seed + j.to_bytes(4, "big") + attempt.to_bytes(4, "big")
            stream = b"".join(hashlib.sha256(head + b.to_bytes(4, "big")).digest()
                              for b in range(blocks))
            bits = format(int.from_bytes(stream, "big"), f"0{8 * len(stream)}b")[:n]
            if "0" in bits and "1" in bits:
                out.append(bits.encode().translate(_WHITE))
                break
    return out


def fresh_fields(seed: bytes, grid: int, count: int) -> list[bytes]:
    """The ``count`` fresh warping fields of a claim (protocol_spec/ubw.md §Fresh triggers):
    each ``grid``·``grid``·2 little-endian doubles, shape (grid, grid, 2) row-major, the
    layout of an item's ``field``.

    Field j: the bytes of SHA-256(FIELD_DOMAIN || seed || uint32_be(j) || uint32_be(b)) for
    b = 0, 1, …, read as big-endian uint64 words w; u = (w >> 11)·2^-53, v = 2u − 1 (both
    exact), f = v / (fsum(|v|) / n): uniform offsets in [−1, 1) normalised by their mean
    absolute value, make_warp's distribution, and defined to the last bit."""
    if grid < 1:
        raise MalformedInputError(f"fresh fields need a grid of at least 1, got {grid}")
    n = 2 * grid * grid
    blocks = -(-n // 4)
    out = []
    for j in range(count):
        head = FIELD_DOMAIN + seed + j.to_bytes(4, "big")
        stream = b"".join(hashlib.sha256(head + b.to_bytes(4, "big")).digest()
                          for b in range(blocks))
        v = [2 * ((w >> 11) * 2.0 ** -53) - 1 for w in struct.unpack(f">{n}Q", stream[:8 * n])]
        scale = math.fsum(abs(x) for x in v) / n
        out.append(struct.pack(f"<{n}d", *(x / scale for x in v)))
    return out


def drawn_trigger(seed: bytes, side: int = 0, grid: int = 0) -> bytes:
    """A drawn key's trigger: fresh square 0 (``side``) or fresh field 0 (``grid``) of the
    trigger seed, in the layout of :func:`fresh_patterns` or :func:`fresh_fields`. The
    key's trigger then comes from the fresh triggers' own distribution by construction,
    which is what makes the rank test exact whoever made the key."""
    if len(seed) != 32 or bool(side) == bool(grid):
        raise MalformedInputError("a drawn trigger needs a 32-byte seed and a side or a grid")
    return fresh_patterns(seed, side, 1)[0] if side else fresh_fields(seed, grid, 1)[0]


@dataclass(frozen=True)
class QuerySpace:
    """What reading an item needs from a checked key: K classes, [C, H, W], for fresh
    triggers the square's side or the warping field's grid (0 without them), and whether
    the items carry no trigger because the key's is drawn from the log."""

    classes: int
    shape: tuple[int, int, int]
    side: int = 0
    grid: int = 0
    drawn: bool = False


@dataclass(frozen=True)
class Item:
    """An item's value as read: the JSON value, the images' bytes, the square's place or
    the warping field's bytes (a fresh field key's items carry no triggered image)."""

    value: dict[str, Any]
    image: bytes
    triggered: bytes | None
    place: tuple[int, int] | None
    field: bytes | None = None


def _place(value: Any, space: QuerySpace, where: str) -> tuple[int, int]:
    _, h, w = space.shape
    s = space.side
    if not (isinstance(value, list) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise MalformedInputError(f"{where}: expected [row, column] of the square")
    r, c = value
    if not (0 <= r <= h - s and 0 <= c <= w - s):
        raise MalformedInputError(f"{where}: a {s}×{s} square at [{r}, {c}] is not inside "
                                  f"the {h}×{w} image")
    return r, c


def _field(text: str, space: QuerySpace, where: str) -> bytes:
    """A fresh field key's ``field``: canonical base64 of k·k·2 finite little-endian
    doubles whose mean absolute value is 1 within 1e-9 (make_warp's normalisation, so the
    key's field is of the fresh fields' scale)."""
    n = 2 * space.grid * space.grid
    raw = b64decode(text, field=where, size=8 * n)
    values = struct.unpack(f"<{n}d", raw)
    if not all(math.isfinite(x) for x in values):
        raise MalformedInputError(f"{where}: the field holds a value that is not finite")
    if abs(math.fsum(abs(x) for x in values) / n - 1) > 1e-9:
        raise MalformedInputError(f"{where}: the field's mean absolute value is not 1")
    return raw


def read_item(value: Any, space: QuerySpace, where: str) -> Item:
    """An item's value, checked as protocol_spec/ubw.md requires (no other member, label
    in [0, classes), canonical base64 of exactly C·H·W bytes; with fresh squares a
    ``place`` whose square lies inside the image; with fresh fields a ``field`` in place
    of ``triggered``, of the key's grid and scale). The decider and the answerer's
    decoder (:func:`claimkit.schemes.ubw.decode_queries`) share it, so an answerer
    refuses whatever Verify would refuse (a label of −1 would otherwise index class K − 1)."""
    c, h, w = space.shape
    f = Fields(value, where)
    query = {"image": f.str("image", max_len=1 << 26),
             "label": f.int("label", hi=space.classes - 1)}
    place = field = None
    if space.drawn:
        pass                # the trigger comes from the log, not from the item
    elif space.grid:
        query["field"] = f.str("field", max_len=1 << 26)
        field = _field(query["field"], space, f.path("field"))
    else:
        query["triggered"] = f.str("triggered", max_len=1 << 26)
    if space.side:
        place = _place(f.raw("place"), space, f.path("place"))
        query["place"] = list(place)
    f.done()
    image = b64decode(query["image"], field=f.path("image"), size=c * h * w)
    triggered = None if field or space.drawn else b64decode(
        query["triggered"], field=f.path("triggered"), size=c * h * w)
    return Item(query, image, triggered, place, field)


def paste_square(image: bytes, pattern: bytes, place: tuple[int, int], space: QuerySpace) -> bytes:
    """``image`` (C·H·W bytes) with the side × side ``pattern`` (row-major) at ``place`` in
    every channel: a drawn square key's triggered image, which :func:`check_square`
    reads back."""
    c, h, w = space.shape
    s, (r0, c0) = space.side, place
    out = bytearray(image)
    for ch in range(c):
        for y in range(s):
            at = (ch * h + r0 + y) * w + c0
            out[at:at + s] = pattern[y * s:(y + 1) * s]
    return bytes(out)


def check_square(item: Item, space: QuerySpace, where: str) -> bytes:
    """The key's square in ``item``: ``triggered`` equals ``image`` outside the side × side
    square at ``place``, and inside it every channel holds the same pattern of 0s and
    255s with both colours. Returns the pattern (row-major). Without this check the owner
    could commit any image as "triggered" and beat the fresh squares at will."""
    assert item.place is not None
    c, h, w = space.shape
    s, (r0, c0) = space.side, item.place
    rows = []
    for ch in range(c):
        for y in range(h):
            at = (ch * h + y) * w
            a, t = item.image[at:at + w], item.triggered[at:at + w]
            inside = r0 <= y < r0 + s
            if (a if not inside else a[:c0] + a[c0 + s:]) != \
                    (t if not inside else t[:c0] + t[c0 + s:]):
                raise MalformedInputError(f"{where}: the triggered image differs from the "
                                          f"image outside the square (channel {ch}, row {y})")
            if inside:
                rows.append(t[c0:c0 + s])
    pattern = b"".join(rows[:s])
    if any(b"".join(rows[k * s:(k + 1) * s]) != pattern for k in range(1, c)):
        raise MalformedInputError(f"{where}: the square differs between channels")
    if pattern.translate(None, b"\x00\xff"):
        raise MalformedInputError(f"{where}: the square holds values other than 0 and 255")
    if b"\x00" not in pattern or b"\xff" not in pattern:
        raise MalformedInputError(f"{where}: the square needs both black and white pixels")
    return pattern


def _probability(value: Any, where: str) -> float:
    """A JSON number in [0, 1] as a float. The range is checked on the value itself,
    before float(): a JSON integer such as 10**400 has no float (OverflowError), and
    Python compares ints with floats exactly (NaN fails the comparison)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedInputError(f"{where}: expected a probability")
    if not 0.0 <= value <= 1.0:
        shown = repr(value) if isinstance(value, float) else "an integer"  # ints may be huge
        raise MalformedInputError(f"{where}: {shown} is not a probability in [0, 1]")
    return float(value)


@dataclass(frozen=True)
class _Params:
    space: QuerySpace
    tau: float
    alpha: float
    fresh: int
    strength: float = 0.0
    drawn: bool = False


def _read_fresh(value: Any, count: int, where: str) -> bytes:
    f = Fields(value, where)
    seed = f.str("seed", max_len=64)
    if len(seed) != 64 or seed.strip("0123456789abcdef"):
        raise MalformedInputError(f"{f.path('seed')}: expected 64 lowercase hex digits")
    if f.int("count", hi=MAX_FRESH) != count:
        raise MalformedInputError(f"{f.path('count')}: the key has {count} fresh triggers")
    f.done()
    return bytes.fromhex(seed)


def read_queries(queries: Any, vk: VerificationKey) -> tuple[list[Item], bytes | None, int]:
    """Queries as an answerer reads them: the checked items, the challenge seed of their
    fresh triggers (the same in every query) and K (``None`` and 0 without them)."""
    if isinstance(queries, (str, bytes, dict)) or not isinstance(queries, Sequence):
        raise MalformedInputError("queries: expected a list of {image, label, triggered} objects")
    p = UBWDecider(vk.scheme)._params(vk)
    space = replace(p.space, drawn=False)   # a drawn key's queries carry its trigger
    items, seeds = [], set()
    for i, q in enumerate(queries):
        if p.fresh:
            f = Fields(q, f"queries[{i}]")
            seeds.add(_read_fresh(f.raw("fresh"), p.fresh, f.path("fresh")))
            q = {k: v for k, v in q.items() if k != "fresh"}
        items.append(read_item(q, space, f"queries[{i}]"))
    if len(seeds) > 1:
        raise MalformedInputError("queries: the fresh triggers' seed differs between queries")
    if len({item.field for item in items}) > 1:
        raise MalformedInputError("queries: the warping field differs between queries")
    return items, (seeds.pop() if seeds else None), p.fresh


class UBWDecider:
    """Prop. 1's pairwise one-sided t-test with margin τ, for one UBW scheme name, and
    for a ``ubw-c`` key with fresh triggers the rank test beside it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _params(self, vk: VerificationKey) -> _Params:
        f = Fields(vk.params, "verification_key.params")
        classes = f.int("num_classes", lo=2, hi=100_000)
        tau = f.float("tau", lo=0.0, hi=1.0)
        if tau >= 1.0:
            raise MalformedInputError("verification_key.params.tau: must be below 1")
        alpha = f.float("alpha", lo=math.ulp(0.0), hi=0.5)  # (0, 0.5]: any positive double
        f.int("m", lo=2, hi=1 << 20, optional=True)
        shape = read_shape(f)
        if vk.params.get("fresh", 0) is None:      # "integer, optional": absent, never null
            raise MalformedInputError("verification_key.params.fresh: expected an integer")
        fresh = f.int("fresh", hi=MAX_FRESH, optional=True) or 0
        side = grid = 0
        strength = 0.0
        if fresh:
            if self.name != "ubw-c":
                raise MalformedInputError("verification_key.params.fresh: only ubw-c keys "
                                          "have fresh triggers")
            if fresh < min_fresh(alpha):
                raise MalformedInputError(
                    f"verification_key.params.fresh: with {fresh} fresh triggers p_rank is "
                    f"at least 1/{fresh + 1}, above alpha = {alpha}: no claim could pass")
            if f.has("side") == f.has("grid"):       # the trigger's kind: square or field
                raise MalformedInputError("verification_key.params: a key with fresh "
                                          "triggers needs exactly one of side and grid")
            if f.has("side"):
                side = f.int("side", lo=2, hi=min(shape[1:]))
            else:
                grid = f.int("grid", lo=2, hi=min(shape[1:]))
                strength = f.float("warp_strength", lo=math.ulp(0.0), hi=sys.float_info.max)
        drawn = f.has("trigger_commitment")
        if drawn:
            if not fresh:
                raise MalformedInputError("verification_key.params.trigger_commitment: only a "
                                          "ubw-c key with fresh triggers draws its trigger")
            commitment = f.str("trigger_commitment", max_len=64)
            if len(commitment) != 64 or commitment.strip("0123456789abcdef"):
                raise MalformedInputError("verification_key.params.trigger_commitment: "
                                          "expected 64 lowercase hex digits")
        return _Params(QuerySpace(classes, shape, side, grid, drawn), tau, alpha, fresh, strength,
                       drawn)

    def check_params(self, vk: VerificationKey) -> None:
        self._params(vk)

    def check_claim_size(self, vk: VerificationKey, k: int) -> None:
        """Before a claim spends items: at least 2, and enough for the test's floor to be
        below alpha (fewer can only be rejected; an arbiter just rejects such a bundle)."""
        p = self._params(vk)
        self._check_size(k)
        check_reachable(k, p.tau, p.alpha, "pairs")

    @staticmethod
    def _check_size(k: int) -> None:
        check_min_opened(k, 2, "the pairwise t-test needs at least 2 opened items")

    def query_space(self, vk: VerificationKey) -> QuerySpace:
        """What :func:`read_item` needs from a checked key."""
        return self._params(vk).space

    def _items(self, p: _Params, openings: Sequence[ItemOpening]) -> list[Item]:
        """The opened items, read; with fresh triggers each must show the same square, or
        carry the same warping field (checked by :func:`read_item`), unless the key's
        trigger is drawn from the log and the items carry none."""
        items, trigger = [], None
        for opening in openings:
            where = f"opening[{opening.index}].value"
            item = read_item(opening.value, p.space, where)
            if p.fresh and not p.drawn:
                this = item.field if p.space.grid else check_square(item, p.space, where)
                what = "warping field" if p.space.grid else "square"
                if trigger is None:
                    trigger = this
                elif this != trigger:
                    raise MalformedInputError(f"{where}: the {what} differs from the first "
                                              f"opened item's")
            items.append(item)
        return items

    def queries(self, vk: VerificationKey, openings: Sequence[ItemOpening], *,
                challenge: bytes | None = None, trigger: bytes | None = None) -> list[Any]:
        """The opened items; with fresh triggers each also names the claim's challenge
        seed and K, from which the answerer draws the fresh squares. For a drawn key,
        ``trigger`` is its trigger seed (:func:`claimkit.challenge.trigger_seed`) and each
        query gets the drawn square pasted at its place, or the drawn field."""
        p = self._params(vk)
        if (trigger is not None) != p.drawn:
            raise MalformedInputError("a key whose trigger is drawn from the log needs its "
                                      "trigger seed" if p.drawn else
                                      "this key's trigger is not drawn from the log")
        items = self._items(p, openings)
        if not p.fresh:
            return [item.value for item in items]
        if challenge is None or len(challenge) != 32:
            raise MalformedInputError("a key with fresh triggers needs the claim's 32-byte "
                                      "challenge seed")
        values = [item.value for item in items]
        if trigger is not None:
            values = _with_drawn(items, drawn_trigger(trigger, p.space.side, p.space.grid),
                                 p.space)
        return [{**value, "fresh": {"seed": challenge.hex(), "count": p.fresh}}
                for value in values]

    def decide(self, vk: VerificationKey, openings: Sequence[ItemOpening],
               answers: Sequence[Any]) -> Evidence:
        p = self._params(vk)
        if p.fresh:
            self._items(p, openings)
        check_answer_count(answers, openings)
        self._check_size(len(answers))
        width = 2 + p.fresh
        rows = []
        for i, answer in enumerate(answers):
            if not isinstance(answer, list) or len(answer) != width:
                raise MalformedInputError(
                    f"answers[{i}]: expected [P_benign, P_triggered]" if not p.fresh else
                    f"answers[{i}]: expected [P_benign, P_triggered, P_fresh_1 … P_fresh_{p.fresh}]")
            rows.append([_probability(v, f"answers[{i}][{k}]") for k, v in enumerate(answer)])
        benign, triggered = [r[0] for r in rows], [r[1] for r in rows]
        result = paired_t_margin_test(benign, triggered, tau=p.tau, alpha=p.alpha)
        details: dict[str, Any] = {"pairs": len(answers), "tau": p.tau,
                                   "delta_p": result.params["mean_difference"]}
        if p.fresh:
            result, details = _with_rank(result, details, rows, p)
        return Evidence(self.name, tuple(answers), result, details)


def _with_drawn(items: Sequence[Item], trigger: bytes, space: QuerySpace) -> list[dict[str, Any]]:
    """The query values of a drawn key's items: what an undrawn fresh key's items hold,
    the drawn square pasted at each item's place or the drawn field."""
    if space.grid:
        return [{**item.value, "field": b64encode(trigger)} for item in items]
    out = []
    for item in items:
        assert item.place is not None       # read_item requires it of a square key's items
        out.append({**item.value, "triggered": b64encode(
            paste_square(item.image, trigger, item.place, space))})
    return out


def _units(x: float) -> int:
    """A double as an exact integer multiple of 2^-1074, the smallest positive double."""
    n, d = x.as_integer_ratio()
    return n << (1075 - d.bit_length())


def _with_rank(prop1: TestResult, details: dict[str, Any], rows: list[list[float]],
               p: _Params) -> tuple[TestResult, dict[str, Any]]:
    """Prop. 1 and the rank test together (an intersection–union test): accepted iff both
    accept, p the larger. D(π) = mean_i(P_b,i − P_p,i(π)) is computed exactly: every
    answer is an integer number of 2^-1074, so each column sums exactly as integers (an
    owner's large K·m costs integer additions, not rational arithmetic), the rank, ties
    included, is the same on every platform, and the reported D are correctly rounded."""
    m = len(rows)
    sums = [sum(_units(r[k]) for r in rows) for k in range(2 + p.fresh)]
    d = [Fraction(sums[0] - total) for total in sums[1:]]    # m·2^1074·D, a common scale
    rank = monte_carlo_rank_test(d[0], d[1:], alpha=p.alpha)
    fresh = sorted(d[1:])
    half = len(fresh) // 2
    median = fresh[half] if len(fresh) % 2 else (fresh[half - 1] + fresh[half]) / 2

    def mean(scaled: Fraction) -> float:
        return float(scaled / (m << 1074))

    result = replace(prop1, test="paired-t-margin-and-rank",
                     p_value=max(prop1.p_value, rank.p_value),
                     reject_null=prop1.reject_null and rank.reject_null,
                     params={**prop1.params, "p_prop1": prop1.p_value,
                             "p_rank": rank.p_value, "fresh": p.fresh})
    return result, {**details, "fresh": p.fresh, "p_prop1": prop1.p_value,
                    "p_rank": rank.p_value, "d_key": mean(d[0]),
                    "d_fresh_median": mean(median), "d_fresh_max": mean(fresh[-1])}


for _name in ("ubw-p", "ubw-c"):
    register_decider(UBWDecider(_name))
