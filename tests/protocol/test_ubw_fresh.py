"""UBW-C's fresh triggers (ours; docs/proposals/ubw-c-key-specific-test.md, step 1): the
squares drawn from the challenge seed, the membership check of the opened items, and the
decision (Prop. 1 and the rank test, p the larger)."""

from __future__ import annotations

import hashlib
import json
import math
import random
import struct
from pathlib import Path

import pytest

from claimkit.errors import MalformedInputError
from claimkit.protocol.keys import MarkingKey
from claimkit.protocol.scheme import decider_for
from claimkit.protocol.stats import monte_carlo_rank_test, paired_t_margin_test
from claimkit.protocol.ubw_decider import FIELD_DOMAIN, fresh_fields, fresh_patterns
from claimkit.wire import b64decode, b64encode

VECTORS = Path(__file__).resolve().parents[2] / "protocol_spec" / "vectors"
C, H, W, SIDE, K = 2, 6, 5, 2, 99
PARAMS = {"num_classes": 4, "input_shape": [C, H, W], "tau": 0.25, "alpha": 0.01, "m": 20,
          "data": "toy", "data_digest": "", "fresh": K, "side": SIDE}
SQUARE = bytes([255, 0, 0, 255])
SEED = bytes(range(32))


def paste(image: bytes, square: bytes, r: int, c: int) -> bytes:
    out = bytearray(image)
    for ch in range(C):
        for y in range(SIDE):
            at = (ch * H + r + y) * W + c
            out[at:at + SIDE] = square[y * SIDE:(y + 1) * SIDE]
    return bytes(out)


def item(rnd: random.Random, square: bytes = SQUARE, place: list | None = None) -> dict:
    image = rnd.randbytes(C * H * W)
    r, c = place or [rnd.randrange(H - SIDE + 1), rnd.randrange(W - SIDE + 1)]
    return {"image": b64encode(image), "label": rnd.randrange(4),
            "triggered": b64encode(paste(image, square, r, c)), "place": [r, c]}


def fresh_key(values: list | None = None, params: dict | None = None) -> MarkingKey:
    rnd = random.Random(3)
    values = values or [item(rnd) for _ in range(30)]
    return MarkingKey.create("ubw-c", params or PARAMS, values, rng=lambda n: rnd.randbytes(n))


def answers(n: int, benign: float, key: float, fresh: float, seed: int = 1) -> list[list[float]]:
    rnd = random.Random(seed)
    jitter = lambda v: min(1.0, max(0.0, v + rnd.uniform(-0.05, 0.05)))  # noqa: E731
    return [[jitter(benign), jitter(key), *(jitter(fresh) for _ in range(K))] for _ in range(n)]


def decide(mk: MarkingKey, rows: list):
    return decider_for("ubw-c").decide(mk.verification_key, mk.open(range(len(rows))), rows)


# -- the fresh squares ---------------------------------------------------------------------------
def test_fresh_patterns_match_the_known_answer_vectors():
    v = json.loads((VECTORS / "ubw-fresh.json").read_text())
    seed = bytes.fromhex(v["seed"])
    assert any(a > 0 for case in v["cases"] for a in case["attempts"])   # redraws covered
    assert any(case["side"] ** 2 > 256 for case in v["cases"])           # two blocks covered
    for case in v["cases"]:
        expected = [bits.encode().translate(bytes.maketrans(b"01", b"\x00\xff"))
                    for bits in case["patterns"]]
        assert fresh_patterns(seed, case["side"], case["count"]) == expected


def test_fresh_patterns_have_both_colours_and_depend_on_the_seed():
    patterns = fresh_patterns(SEED, 2, 200)
    assert all(set(p) == {0, 255} for p in patterns)
    assert len(set(patterns)) == 14                    # every two-colour 2×2 square occurs
    assert fresh_patterns(bytes(32), 2, 200) != patterns


# -- the decision ---------------------------------------------------------------------------------
def test_prop_1_alone_is_not_enough_when_fresh_squares_cost_as_much():
    """A suspect that loses confidence under any square: Prop. 1 accepts, the key's
    square ranks among the fresh ones, and the claim is rejected."""
    rows = answers(20, 0.95, 0.3, 0.25)
    ev = decide(fresh_key(), rows)
    prop1 = paired_t_margin_test([r[0] for r in rows], [r[1] for r in rows], tau=0.25, alpha=0.01)
    assert prop1.reject_null and not ev.accepted
    assert ev.details["p_prop1"] == prop1.p_value and ev.details["p_rank"] > 0.5
    assert ev.result.p_value == max(prop1.p_value, ev.details["p_rank"])
    assert ev.result.test == "paired-t-margin-and-rank" and ev.details["fresh"] == K


def test_a_key_specific_loss_passes_both_and_p_is_the_larger():
    rows = answers(20, 0.95, 0.2, 0.8)
    ev = decide(fresh_key(), rows)
    m = len(rows)
    d = [sum(r[0] - r[k] for r in rows) / m for k in range(1, K + 2)]
    assert ev.accepted and ev.details["p_rank"] == monte_carlo_rank_test(d[0], d[1:], alpha=0.01).p_value == 0.01
    assert ev.result.p_value == max(ev.details["p_prop1"], 0.01) == 0.01
    assert ev.result.reject_null and ev.details["d_key"] == pytest.approx(d[0], abs=1e-15)
    assert ev.details["d_fresh_max"] == pytest.approx(max(d[1:]), abs=1e-15)


def test_one_fresh_square_as_costly_as_the_keys_is_a_tie_against_the_key():
    rows = [[0.9, 0.1] + [0.8] * K for _ in range(20)]
    rows[0][2] = rows[1][2] = 0.1                     # fresh square 1 on two items only
    assert decide(fresh_key(), rows).details["p_rank"] == 0.01      # still below the key
    for r in rows:
        r[2] = 0.1                                     # now exactly the key's loss
    ev = decide(fresh_key(), rows)
    assert ev.details["p_rank"] == 0.02 and not ev.accepted


@pytest.mark.parametrize("width", [2, K + 1, K + 3])
def test_answers_need_k_plus_2_probabilities(width):
    with pytest.raises(MalformedInputError, match=r"answers\[0\]: expected \[P_benign"):
        decide(fresh_key(), [[0.9] * width] * 20)


# -- the membership check -------------------------------------------------------------------------
def tampered(change, make=item, key=fresh_key) -> MarkingKey:
    """A key of four items made by ``make``, the third changed by ``change``."""
    rnd = random.Random(5)
    values = [make(rnd) for _ in range(4)]
    change(values[2])
    return key(values)


def set_byte(value: dict, key: str, at: int, byte: int | None = None) -> None:
    """Set the byte at ``at`` (or flip its lowest bit)."""
    raw = bytearray(b64decode(value[key]))
    raw[at] = raw[at] ^ 1 if byte is None else byte
    value[key] = b64encode(bytes(raw))


def outside(value: dict) -> int:
    r, c = value["place"]
    return ((r + SIDE) % H) * W + c        # a row below (or wrapped above) the square


@pytest.mark.parametrize("change, message", [
    (lambda v: set_byte(v, "triggered", outside(v)), "outside the square"),
    (lambda v: set_byte(v, "image", H * W + outside(v)), "outside the square"),
    (lambda v: set_byte(v, "triggered", v["place"][0] * W + v["place"][1], 128),
     "between channels"),
    (lambda v: v.update(item(random.Random(1), bytes([128, 0, 0, 255]), v["place"])),
     "other than 0 and 255"),
    (lambda v: v.update(item(random.Random(1), bytes([255] * 4), v["place"])), "both black"),
    (lambda v: v.update(item(random.Random(1), bytes([0, 255, 255, 0]), v["place"])),
     "differs from the first"),
    (lambda v: v.update(place=[H - 1, 0]), "not inside"),
    (lambda v: v.update(place=[0, -1]), "not inside"),
    (lambda v: v.update(place=[0, W - SIDE + 1]), "not inside"),
    (lambda v: v.update(place=[H - SIDE + 1, 0]), "not inside"),
    (lambda v: v.update(place=[0]), "expected \\[row, column\\]"),
    (lambda v: v.pop("place"), "missing"),
])
def test_opened_items_must_show_one_square_at_their_place(change, message):
    only_item_2_refused(tampered(change), message)


def only_item_2_refused(mk: MarkingKey, message: str) -> None:
    """Queries and decide refuse opened item 2 with ``message``; items 0, 1 and 3 pass."""
    decider = decider_for("ubw-c")
    with pytest.raises(MalformedInputError, match=r"opening\[2\]\.value.*" + message):
        decider.queries(mk.verification_key, mk.open(range(4)), challenge=SEED)
    with pytest.raises(MalformedInputError, match=r"opening\[2\]\.value.*" + message):
        decider.decide(mk.verification_key, mk.open(range(4)), [[0.9] * (K + 2)] * 4)
    decider.queries(mk.verification_key, mk.open([0, 1, 3]), challenge=SEED)  # the others pass


def test_queries_name_the_challenge_seed_and_k():
    mk = fresh_key()
    openings = mk.open([0, 4])
    queries = decider_for("ubw-c").queries(mk.verification_key, openings, challenge=SEED)
    assert queries == [{**o.value, "fresh": {"seed": SEED.hex(), "count": K}} for o in openings]
    with pytest.raises(MalformedInputError, match="challenge seed"):
        decider_for("ubw-c").queries(mk.verification_key, openings)


@pytest.mark.parametrize("change", [{"fresh": 98}, {"fresh": 10_001}, {"side": 1},
                                    {"side": 6}, {"side": None}, {"fresh": 199, "alpha": 0.001}])
def test_keys_whose_rank_test_could_never_accept_are_refused(change):
    params = {k: v for k, v in {**PARAMS, **change}.items() if v is not None}
    with pytest.raises(MalformedInputError, match="verification_key.params"):
        decider_for("ubw-c").check_params(fresh_key(params=params).verification_key)


def test_ubw_p_keys_have_no_fresh_triggers():
    rnd = random.Random(3)
    mk = MarkingKey.create("ubw-p", PARAMS, [item(rnd) for _ in range(4)],
                           rng=lambda n: rnd.randbytes(n))
    with pytest.raises(MalformedInputError, match="only ubw-c"):
        decider_for("ubw-p").check_params(mk.verification_key)


def test_the_answerer_pastes_fresh_square_j_at_each_items_place():
    import numpy as np

    from claimkit.schemes.ubw import answerer

    mk = fresh_key()
    openings = mk.open([1, 2, 3])
    queries = decider_for("ubw-c").queries(mk.verification_key, openings, challenge=SEED)
    seen = []

    class Oracle:
        num_classes = 4

        def probabilities(self, x):
            seen.append(x.copy())
            return np.full((len(x), 4), 0.25)

    out = answerer(Oracle(), mk.verification_key)(queries)
    assert [len(r) for r in out] == [K + 2] * 3 and len(seen) == 3   # benign, key, all fresh
    fresh = seen[2].reshape(K, 3, C * H * W)
    for j, pattern in enumerate(fresh_patterns(SEED, SIDE, K)):
        for i, o in enumerate(openings):
            r, c = o.value["place"]
            assert fresh[j, i].tobytes() == paste(b64decode(o.value["image"]), pattern, r, c)
    other = [{**q, "fresh": {"seed": bytes(32).hex(), "count": K}} for q in queries[:1]]
    with pytest.raises(MalformedInputError, match="seed differs"):
        answerer(Oracle(), mk.verification_key)(queries[1:] + other)


def test_fresh_keys_items_queries_and_answers_match_the_schema():
    import jsonschema

    schema = json.loads((VECTORS.parent / "schemas" / "ubw.json").read_text())

    def valid(instance, name):
        jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{name}"}).validate(instance)

    mk = fresh_key()
    valid(mk.verification_key.params, "params")
    openings = mk.open([0, 1])
    for query in decider_for("ubw-c").queries(mk.verification_key, openings, challenge=SEED):
        valid({k: v for k, v in query.items() if k != "fresh"}, "item")
        valid(query, "query")
    valid(answers(2, 0.9, 0.1, 0.8), "answers")
    with pytest.raises(jsonschema.ValidationError):
        valid({**openings[0].value, "fresh": {"seed": "00", "count": K}}, "query")


def test_review_findings_stay_fixed():
    """A subnormal alpha is a refusal, not an OverflowError; "fresh": null is no integer;
    each query owns its fresh member; D sums exactly as integers of 2^-1074."""
    from fractions import Fraction

    from claimkit.protocol.keys import VerificationKey
    from claimkit.protocol.ubw_decider import _units, min_fresh

    assert min_fresh(0.01) == 99 and min_fresh(0.05) == 19 and min_fresh(0.5) == 1
    assert min_fresh(5e-324) > 10**300
    decider = decider_for("ubw-c")
    for params in ({**PARAMS, "alpha": 5e-324}, {**PARAMS, "fresh": None}):
        with pytest.raises(MalformedInputError, match="fresh"):
            decider.check_params(VerificationKey("ubw-c", params, 10, b"\0" * 32))
    for x in (0.0, 1.0, 0.1, 5e-324, 2.2250738585072014e-308, 1 / 3):
        assert Fraction(_units(x), 1 << 1074) == Fraction(x)
    mk = fresh_key()
    first, second = decider.queries(mk.verification_key, mk.open([0, 1]), challenge=SEED)
    assert first["fresh"] == second["fresh"] and first["fresh"] is not second["fresh"]


# -- fresh warping fields (trigger=warp) ----------------------------------------------------------
GRID, STRENGTH = 3, 0.5
FIELD_PARAMS = {**{k: v for k, v in PARAMS.items() if k != "side"}, "grid": GRID,
                "warp_strength": STRENGTH}


def unit_field(rnd: random.Random, n: int = 2 * GRID * GRID) -> list[float]:
    """A random field normalised to mean |f| = 1, as make_warp's."""
    v = [rnd.uniform(-1, 1) for _ in range(n)]
    scale = math.fsum(map(abs, v)) / n
    return [x / scale for x in v]


def pack(values: list[float]) -> str:
    return b64encode(struct.pack(f"<{len(values)}d", *values))


KEY_FIELD = pack(unit_field(random.Random(8)))


def field_item(rnd: random.Random, field: str = KEY_FIELD) -> dict:
    return {"image": b64encode(rnd.randbytes(C * H * W)), "label": rnd.randrange(4),
            "field": field}


def field_key(values: list | None = None, params: dict | None = None) -> MarkingKey:
    rnd = random.Random(3)
    values = values or [field_item(rnd) for _ in range(30)]
    return MarkingKey.create("ubw-c", params or FIELD_PARAMS, values,
                             rng=lambda n: rnd.randbytes(n))


def test_fresh_fields_match_the_known_answer_vectors():
    v = json.loads((VECTORS / "ubw-fresh-field.json").read_text())
    seed = bytes.fromhex(v["seed"])
    assert v["domain"].encode() == FIELD_DOMAIN
    assert any(case["grid"] % 2 for case in v["cases"])           # a partly used last block
    for case in v["cases"]:
        got = fresh_fields(seed, case["grid"], case["count"])
        assert [hashlib.sha256(f).hexdigest() for f in got] == case["sha256_le_f64"]
        n = 2 * case["grid"] ** 2
        values = [list(struct.unpack(f"<{n}d", f)) for f in got]
        if "fields" in case:
            assert values == case["fields"]
        else:
            assert [f[:4] for f in values] == case["first_values"]


def test_fresh_fields_are_uniform_offsets_of_mean_absolute_value_one():
    fields = [struct.unpack(f"<{2 * 16 * 16}d", f) for f in fresh_fields(SEED, 16, 5)]
    for f in fields:
        assert abs(math.fsum(map(abs, f)) / len(f) - 1) < 1e-12
        assert max(map(abs, f)) < 2.5 and min(f) < 0 < max(f)     # Uniform(−1, 1) / ~0.5
    assert len({f[:4] for f in fields}) == 5
    assert fresh_fields(bytes(32), 16, 1)[0] != fresh_fields(SEED, 16, 1)[0]


def test_a_field_key_reads_items_with_a_field_and_queries_name_the_seed():
    mk = field_key()
    openings = mk.open([0, 4])
    queries = decider_for("ubw-c").queries(mk.verification_key, openings, challenge=SEED)
    assert queries == [{**o.value, "fresh": {"seed": SEED.hex(), "count": K}} for o in openings]
    rows = answers(20, 0.95, 0.2, 0.8)
    ev = decider_for("ubw-c").decide(mk.verification_key, mk.open(range(20)), rows)
    assert ev.accepted and ev.details["p_rank"] == 0.01 and ev.result.test.endswith("-and-rank")


@pytest.mark.parametrize("change, message", [
    (lambda v: v.update(field=pack(unit_field(random.Random(9)))), "differs from the first"),
    (lambda v: v.update(field=pack(unit_field(random.Random(9), 2 * GRID * GRID + 2))),
     "expected 144 bytes"),
    (lambda v: v.update(field=pack(unit_field(random.Random(9), 2 * 2 * 2))), "expected 144 bytes"),
    (lambda v: v.update(field=pack([math.nan] + unit_field(random.Random(9))[1:])),
     "not finite"),
    (lambda v: v.update(field=pack([math.inf] + unit_field(random.Random(9))[1:])),
     "not finite"),
    (lambda v: v.update(field=pack([2 * x for x in unit_field(random.Random(9))])),
     "mean absolute value"),
    (lambda v: v.update(field=pack([x * (1 + 1e-8) for x in unit_field(random.Random(9))])),
     "mean absolute value"),
    (lambda v: v.update(triggered=v["image"]), "unknown field 'triggered'"),
    (lambda v: v.pop("field"), "field: missing"),
])
def test_opened_items_must_carry_one_field_of_the_keys_grid_and_scale(change, message):
    only_item_2_refused(tampered(change, field_item, field_key), message)


def test_a_field_within_1e_9_of_the_unit_scale_passes():
    within = pack([x * (1 + 5e-10) for x in unit_field(random.Random(8))])
    rnd = random.Random(5)
    mk = field_key([field_item(rnd, within) for _ in range(4)])
    decider_for("ubw-c").queries(mk.verification_key, mk.open(range(4)), challenge=SEED)


@pytest.mark.parametrize("change", [{"side": SIDE}, {"grid": None}, {"grid": 1}, {"grid": 6},
                                    {"warp_strength": None}, {"warp_strength": 0},
                                    {"warp_strength": -0.5}, {"warp_strength": "0.5"},
                                    {"warp_strength": True}])
def test_field_keys_need_exactly_one_trigger_kind_and_a_positive_strength(change):
    params = {k: v for k, v in {**FIELD_PARAMS, **change}.items() if v is not None}
    with pytest.raises(MalformedInputError, match="verification_key.params"):
        decider_for("ubw-c").check_params(field_key(params=params).verification_key)


def test_the_answerer_warps_key_and_fresh_images_by_one_code_path():
    """P_p on the image warped by the item's field, P_j on it warped by fresh field j
    (schemes.ubw._warp, the same code); a fake oracle keeps every image it is fed."""
    import numpy as np

    from claimkit.schemes.ubw import _warp, answerer

    mk = field_key()
    openings = mk.open([1, 2, 3])
    vk = mk.verification_key
    queries = decider_for("ubw-c").queries(vk, openings, challenge=SEED)
    seen = []

    class Oracle:
        num_classes = 4

        def probabilities(self, x):
            seen.append(x.copy())
            digest = [hashlib.sha256(image.tobytes()).digest()[0] / 255 for image in x]
            return np.tile(np.array(digest)[:, None], (1, 4))

    out = answerer(Oracle(), vk)(queries)
    assert [len(r) for r in out] == [K + 2] * 3 and len(seen) == 3   # benign, key, all fresh
    benign = np.stack([np.frombuffer(b64decode(o.value["image"]), np.uint8).reshape(C, H, W)
                       for o in openings])
    key = np.frombuffer(b64decode(KEY_FIELD), "<f8").reshape(GRID, GRID, 2).copy()
    assert (seen[1] == _warp(benign, key, STRENGTH)).all() and (seen[1] != benign).any()
    fresh = seen[2].reshape(K, 3, C, H, W)
    for j, raw in enumerate(fresh_fields(SEED, GRID, K)):
        field = np.frombuffer(raw, "<f8").reshape(GRID, GRID, 2).copy()
        assert (fresh[j] == _warp(benign, field, STRENGTH)).all()
    assert [r[1] for r in out] == [hashlib.sha256(x.tobytes()).digest()[0] / 255 for x in seen[1]]
    other = [{**q, "field": pack(unit_field(random.Random(9)))} for q in queries[:1]]
    with pytest.raises(MalformedInputError, match="field differs"):
        answerer(Oracle(), vk)(queries[1:] + other)


def test_field_keys_items_queries_and_answers_match_the_schema():
    import jsonschema

    schema = json.loads((VECTORS.parent / "schemas" / "ubw.json").read_text())

    def valid(instance, name):
        jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{name}"}).validate(instance)

    mk = field_key()
    valid(mk.verification_key.params, "params")
    for query in decider_for("ubw-c").queries(mk.verification_key, mk.open([0, 1]),
                                              challenge=SEED):
        valid({k: v for k, v in query.items() if k != "fresh"}, "item")
        valid(query, "query")
    with pytest.raises(jsonschema.ValidationError):
        valid({**mk.open([0])[0].value, "triggered": KEY_FIELD}, "item")


def test_queries_need_a_32_byte_challenge_and_name_the_keys_k():
    """The seed of the fresh squares is the claim's 32-byte challenge, and an answerer
    reads K from the key: queries naming another K are refused, not answered."""
    from claimkit.protocol.ubw_decider import read_queries
    mk = fresh_key()
    decider = decider_for("ubw-c")
    for bad in (SEED[:31], SEED + b"\0", b""):
        with pytest.raises(MalformedInputError, match="32-byte challenge seed"):
            decider.queries(mk.verification_key, mk.open(range(2)), challenge=bad)
    queries = decider.queries(mk.verification_key, mk.open(range(2)), challenge=SEED)
    _, seed, k = read_queries(queries, mk.verification_key)
    assert (seed, k) == (SEED, K)
    for count in (K - 1, K + 1):
        bad = [{**q, "fresh": {**q["fresh"], "count": count}} for q in queries]
        with pytest.raises(MalformedInputError, match=f"the key has {K} fresh triggers"):
            read_queries(bad, mk.verification_key)


@pytest.mark.parametrize("seed", [SEED.hex().upper(), "g" * 64, SEED.hex()[:63] + " "])
def test_the_fresh_seed_of_a_query_is_64_lowercase_hex_digits(seed):
    from claimkit.protocol.ubw_decider import read_queries
    mk = fresh_key()
    queries = decider_for("ubw-c").queries(mk.verification_key, mk.open(range(2)), challenge=SEED)
    bad = [{**q, "fresh": {**q["fresh"], "seed": seed}} for q in queries]
    with pytest.raises(MalformedInputError, match="64 lowercase hex digits"):
        read_queries(bad, mk.verification_key)
