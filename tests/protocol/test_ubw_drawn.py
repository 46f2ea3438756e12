"""UBW-C keys whose trigger is drawn from the registry log (ours; the proposal's step 2,
docs/proposals/ubw-c-key-specific-test.md): the commitment and the trigger seed, the
drawn trigger, the decider's queries, and a claim's trigger draw as the verifier checks
it. No model: the suspect's answers are made up, since what is tested is the protocol."""

from __future__ import annotations

import copy
import hashlib
import json
import random
import sys
from pathlib import Path

import pytest

from claimkit.challenge import trigger_commitment, trigger_seed
from claimkit.claim.bundle import ClaimBundle
from claimkit.claim.make import make_claim
from claimkit.claim.verify import verify_claim
from claimkit.errors import MalformedInputError, RegistryError, VerificationError
from claimkit.identity import Identity
from claimkit.protocol.keys import MarkingKey
from claimkit.protocol.scheme import decider_for
from claimkit.protocol.ubw_decider import (QuerySpace, check_square, drawn_trigger, fresh_fields,
                                           fresh_patterns, paste_square, read_item, read_queries)
from claimkit.registry.entries import Registration, TriggerDraw, sign_request
from claimkit.registry.log import Registry
from claimkit.wire import b64decode, b64encode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import LOG_SEED, PASSPHRASE, FakeClock  # noqa: E402

VECTORS = Path(__file__).resolve().parents[2] / "protocol_spec" / "vectors"
C, H, W, SIDE, K = 2, 6, 5, 2, 99
SECRET = bytes(range(100, 132))
SIG = bytes(range(64))          # a log signature, for the derivations alone
PARAMS = {"num_classes": 4, "input_shape": [C, H, W], "tau": 0.25, "alpha": 0.01, "m": 20,
          "data": "toy", "data_digest": "", "fresh": K, "side": SIDE,
          "trigger_commitment": trigger_commitment(SECRET).hex()}
SPACE = QuerySpace(4, (C, H, W), SIDE)
FIELD_PARAMS = {**{k: v for k, v in PARAMS.items() if k != "side"}, "grid": 3,
                "warp_strength": 0.5}


def drawn_key(params: dict = PARAMS, count: int = 30) -> MarkingKey:
    """Items of a drawn key: an image, a label and (squares) a place, no trigger."""
    rnd = random.Random(3)
    values = []
    for _ in range(count):
        value = {"image": b64encode(rnd.randbytes(C * H * W)), "label": rnd.randrange(4)}
        if "side" in params:
            value["place"] = [rnd.randrange(H - SIDE + 1), rnd.randrange(W - SIDE + 1)]
        values.append(value)
    return MarkingKey.create("ubw-c", params, values, rng=lambda n: rnd.randbytes(n),
                             secret={"trigger_secret": b64encode(SECRET)})


# -- the derivations ------------------------------------------------------------------------
def test_commitment_and_trigger_seed_follow_the_spec_and_the_vectors():
    """SHA-256 of the domains and fields as protocol_spec/ubw.md writes them, computed here
    from the words, and the vector file's values."""
    root = bytes(range(32))
    assert trigger_commitment(SECRET) == hashlib.sha256(
        b"claimkit/trigger-commitment/v1\n" + SECRET).digest()
    signature = bytes(range(64))
    assert trigger_seed(SECRET, size=7, root=root, signature=signature) == hashlib.sha256(
        b"claimkit/trigger/v1\n" + SECRET + (7).to_bytes(8, "big") + root + signature).digest()
    vectors = json.loads((VECTORS / "ubw-drawn.json").read_text())
    for case in vectors["cases"]:
        secret, root = bytes.fromhex(case["secret"]), bytes.fromhex(case["root"])
        assert trigger_commitment(secret).hex() == case["commitment"]
        seed = trigger_seed(secret, size=case["size"], root=root,
                            signature=bytes.fromhex(case["signature"]))
        assert seed.hex() == case["trigger_seed"]
        if "side" in case:
            assert drawn_trigger(seed, side=case["side"]).hex() == case["pattern"]
        else:
            assert drawn_trigger(seed, grid=case["grid"]).hex() == case["field"]


def test_the_drawn_trigger_is_fresh_trigger_0_of_the_trigger_seed():
    """Drawn exactly as the fresh ones are: what makes the rank test exact whoever made
    the key, the premise an owner who tries candidate triggers would otherwise break."""
    seed = trigger_seed(SECRET, size=3, root=b"\x07" * 32, signature=SIG)
    assert drawn_trigger(seed, side=7) == fresh_patterns(seed, 7, 1)[0]
    assert drawn_trigger(seed, grid=4) == fresh_fields(seed, 4, 1)[0]
    assert drawn_trigger(trigger_seed(SECRET, size=4, root=b"\x07" * 32, signature=SIG), side=7) != \
        drawn_trigger(seed, side=7)
    for bad in ({"side": 0, "grid": 0}, {"side": 3, "grid": 3}):
        with pytest.raises(MalformedInputError):
            drawn_trigger(seed, **bad)
    with pytest.raises(MalformedInputError, match="32 bytes"):
        trigger_seed(SECRET[:31], size=3, root=b"\x07" * 32, signature=SIG)


def test_a_trigger_seed_needs_a_tree_head_that_holds_the_draw():
    """The tree head ends with the draw entry, so it has at least one leaf; its root is 32
    bytes and the log's signature is there (1 to 1024 bytes)."""
    trigger_seed(SECRET, size=1, root=b"\x07" * 32, signature=SIG)
    trigger_seed(SECRET, size=(1 << 64) - 1, root=b"\x07" * 32, signature=b"\x01" * 1024)
    for bad in ({"size": 0}, {"size": 1 << 64}, {"root": b"\x07" * 31}, {"signature": b""},
                {"signature": b"\x01" * 1025}):
        args = {"size": 3, "root": b"\x07" * 32, "signature": SIG, **bad}
        with pytest.raises(MalformedInputError, match="tree size"):
            trigger_seed(SECRET, **args)


def test_a_pasted_square_is_what_the_membership_check_reads_back():
    rnd = random.Random(1)
    image = rnd.randbytes(C * H * W)
    pattern = bytes([0, 255, 255, 255])
    pasted = paste_square(image, pattern, (4, 3), SPACE)
    item = read_item({"image": b64encode(image), "label": 1, "triggered": b64encode(pasted),
                      "place": [4, 3]}, SPACE, "item")
    assert check_square(item, SPACE, "item") == pattern
    assert sum(a != b for a, b in zip(image, pasted)) <= C * SIDE * SIDE


# -- the decider ----------------------------------------------------------------------------
@pytest.mark.parametrize("params", [PARAMS, FIELD_PARAMS], ids=["squares", "fields"])
def test_queries_of_a_drawn_key_are_an_undrawn_fresh_keys(params):
    """The decider puts the drawn trigger into each query (the square pasted at the
    item's place, or the field), so the answerer reads them as it reads any fresh key's."""
    mk = drawn_key(params)
    vk = mk.verification_key
    openings = mk.open(range(5))
    seed, challenge = trigger_seed(SECRET, size=9, root=b"\x01" * 32, signature=SIG), b"\x02" * 32
    queries = decider_for("ubw-c").queries(vk, openings, challenge=challenge, trigger=seed)
    items, fresh_seed, count = read_queries(queries, vk)
    assert (fresh_seed, count) == (challenge, K)
    trigger = drawn_trigger(seed, side=params.get("side", 0), grid=params.get("grid", 0))
    for item, opening in zip(items, openings):
        assert item.value["image"] == opening.value["image"]
        if "grid" in params:
            assert item.field == trigger
        else:
            assert check_square(item, SPACE, "query") == trigger
    for bad in ({}, {"trigger": None}):
        with pytest.raises(MalformedInputError, match="needs its trigger seed"):
            decider_for("ubw-c").queries(vk, openings, challenge=challenge, **bad)


def test_an_undrawn_key_or_another_scheme_refuses_a_trigger_seed():
    params = {k: v for k, v in PARAMS.items() if k != "trigger_commitment"}
    rnd = random.Random(2)
    image = rnd.randbytes(C * H * W)
    value = {"image": b64encode(image), "label": 0, "place": [0, 0],
             "triggered": b64encode(paste_square(image, b"\x00\xff\xff\x00", (0, 0), SPACE))}
    mk = MarkingKey.create("ubw-c", params, [value] * 3, rng=lambda n: rnd.randbytes(n))
    with pytest.raises(MalformedInputError, match="not drawn"):
        decider_for("ubw-c").queries(mk.verification_key, mk.open([0]), challenge=b"\x02" * 32,
                                     trigger=b"\x03" * 32)
    with pytest.raises(MalformedInputError, match="do not draw"):
        decider_for("trigger-set").queries(mk.verification_key, [], trigger=b"\x03" * 32)


@pytest.mark.parametrize("change, message", [
    ({"fresh": 0}, "only a ubw-c key with fresh triggers"),
    ({"trigger_commitment": "AB" * 32}, "64 lowercase hex"),
    ({"trigger_commitment": "ab" * 31}, "64 lowercase hex"),
    ({"trigger_commitment": 5}, "trigger_commitment"),
])
def test_a_drawn_keys_commitment_is_checked(change, message):
    params = {**PARAMS, **change}
    if not params["fresh"]:
        del params["fresh"], params["side"]
    mk = drawn_key(params) if "side" in params else MarkingKey.create(
        "ubw-c", params, [{"image": "", "label": 0}], rng=lambda n: b"\x00" * n)
    with pytest.raises(MalformedInputError, match=message):
        decider_for("ubw-c").check_params(mk.verification_key)


def test_a_drawn_keys_items_carry_no_trigger():
    """An opened item with a triggered image or a field where the key draws its trigger
    is malformed: the verifier puts the drawn one in, never the owner's."""
    mk = drawn_key()
    values = [dict(v) for v in mk.items.values]
    values[0]["triggered"] = values[0]["image"]
    rnd = random.Random(4)
    bad = MarkingKey.create("ubw-c", PARAMS, values, rng=lambda n: rnd.randbytes(n))
    with pytest.raises(MalformedInputError, match="triggered"):
        decider_for("ubw-c").decide(bad.verification_key, bad.open([0, 1]),
                                    [[0.9, 0.1, *[0.5] * K]] * 2)


# -- claims: the trigger draw in a bundle ---------------------------------------------------
def draw(registry, mk: MarkingKey, who: Identity) -> tuple[MarkingKey, object]:
    """``who`` draws ``mk`` in ``registry``: the key with the draw's receipt kept (as
    complete_draw keeps it; no trigger needed without a model), and the receipt."""
    vk = mk.verification_key
    request = TriggerDraw(who.public, vk.scheme, vk.digest)
    receipt = registry.draw_trigger(request, sign_request(request, who))
    return MarkingKey(mk.scheme, mk.params, mk.items, {**mk.secret, "draw": receipt.to_dict()}), receipt


def register(registry, mk: MarkingKey, who: Identity):
    vk = mk.verification_key
    request = Registration(who.public, vk.scheme, vk.digest, vk.items)
    return registry.register(request, sign_request(request, who))


@pytest.fixture
def claim_setup(tmp_path):
    """A registry, alice, her drawn key (drawn, then registered), and claim() → bundle."""
    registry = Registry.init(tmp_path / "reg", origin="test.example/drawn", passphrase=PASSPHRASE,
                             clock=FakeClock(), key_strength="min", log_seed=LOG_SEED)
    owner = Identity.generate("alice", seed=b"\x11" * 32)
    mk, _ = draw(registry, drawn_key(), owner)
    registration = register(registry, mk, owner)
    suspect = hashlib.sha256(b"suspect").digest()

    def claim(key=mk, receipt=registration):
        from claimkit.wire import Digest
        ask = lambda queries: [[0.95, 0.1, *[0.9] * K] for _ in queries]  # noqa: E731
        bundle = make_claim(registry, key, receipt, Digest(suspect), ask=ask, identity=owner,
                            k=20)
        return ClaimBundle.from_json(bundle.to_json())

    yield registry, owner, mk, claim
    registry.close()


def test_a_drawn_keys_claim_opens_the_secret_and_the_verifier_derives_the_trigger(claim_setup):
    registry, _, mk, claim = claim_setup
    bundle = claim()
    draw = bundle.predicate.trigger_draw
    assert draw is not None and draw.secret == SECRET
    report = verify_claim(bundle, log_key=registry.log_key)
    assert report.accepted and report.evidence.details["p_rank"] == 0.01
    assert report.to_dict()["registry"]["trigger_draw"] == {
        "index": draw.receipt.index, "time_ms": draw.receipt.entry.time_ms}
    cp = draw.receipt.checkpoint
    signature = draw.receipt.proof.checkpoint.log_signature(registry.log_key)
    trigger = drawn_trigger(trigger_seed(SECRET, size=cp.size, root=cp.root_hash,
                                         signature=signature), side=SIDE)
    for query, opening in zip(bundle.predicate.queries, bundle.predicate.openings):
        image = b64decode(opening.value["image"])
        assert b64decode(query["triggered"]) == paste_square(
            image, trigger, tuple(opening.value["place"]), SPACE)


def resign(bundle, predicate, owner):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "claim"))
    from test_flow import resign as resign_bundle
    return resign_bundle(bundle, predicate, owner)


def test_a_tampered_trigger_draw_is_refused(claim_setup):
    """Each check of the bundle's trigger draw fails alone: another secret, no draw, a draw
    on a key that draws none, a consistency proof cut short, another key's draw."""
    registry, owner, _, claim = claim_setup
    bundle = claim()
    base = bundle.statement.predicate

    def check(edit, message):
        predicate = copy.deepcopy(base)
        edit(predicate)
        with pytest.raises(VerificationError, match=message):
            verify_claim(resign(bundle, predicate, owner), log_key=registry.log_key)

    def other_secret(p):
        p["trigger_draw"]["secret"] = b64encode(bytes(32))

    def no_draw(p):
        del p["trigger_draw"]

    def short_proof(p):
        p["trigger_draw"]["consistency"] = p["trigger_draw"]["consistency"][:-1]

    def undrawn_key(p):
        del p["verification_key"]["params"]["trigger_commitment"]

    check(other_secret, "does not match the key's commitment")
    check(no_draw, "carries no trigger draw")
    check(short_proof, "inconsistent")
    check(undrawn_key, "registered verification key is not the bundle's")

    _, other_receipt = draw(registry, drawn_key({**PARAMS, "tau": 0.2}), owner)

    def another_keys_draw(p):
        p["trigger_draw"]["receipt"] = other_receipt.to_dict()
    check(another_keys_draw, "another verification key")



def test_a_draw_receipt_must_be_a_draw_of_this_key_under_its_own_tree_head(claim_setup):
    """draw_seed on its own: a receipt of another kind of entry naming the key (its
    registration), a draw of the key's digest under another scheme name, and the draw's
    receipt under a later checkpoint (a tree head the owner could pick among, to choose
    the trigger) are all refused; the draw's own receipt gives the seed."""
    from claimkit.claim.drawn import draw_seed
    registry, owner, mk, claim = claim_setup
    vk, key = mk.verification_key, registry.log_key
    bundle = claim()
    receipt = bundle.predicate.trigger_draw.receipt
    assert len(draw_seed(receipt, vk, SECRET, key)) == 32
    with pytest.raises(VerificationError, match="not for a trigger draw"):
        draw_seed(bundle.predicate.registration, vk, SECRET, key)
    later = registry.receipt(receipt.index, receipt.checkpoint.size + 1)
    with pytest.raises(VerificationError, match="must end with the draw entry"):
        draw_seed(later, vk, SECRET, key)
    request = TriggerDraw(owner.public, "ubw-p", vk.digest)
    with registry.store.transaction():          # behind the once-per-key rule
        registry.store.conn.execute("UPDATE entries SET ref = ref + 1 WHERE idx = ?",
                                    (receipt.index,))
    renamed = registry.draw_trigger(request, sign_request(request, owner))
    assert renamed.entry.request.verification_key.matches(vk.digest)
    with pytest.raises(VerificationError, match="another verification key"):
        draw_seed(renamed, vk, SECRET, key)

def test_a_key_registered_before_its_draw_cannot_claim(claim_setup, tmp_path):
    """A release is crafted with the drawn trigger, so its registration must follow the
    draw: make_claim refuses before the intent spends items, the verifier refuses too."""
    registry, owner, _, claim = claim_setup
    early = register(registry, drawn_key({**PARAMS, "tau": 0.3}), owner)
    mk, _ = draw(registry, drawn_key({**PARAMS, "tau": 0.3}), owner)
    size = registry.size
    with pytest.raises(MalformedInputError, match="registered .* before its trigger was drawn"):
        claim(mk, early)
    assert registry.size == size and registry.claims_made(early.index) == 0
    undrawn = MarkingKey(mk.scheme, mk.params, mk.items,
                         {k: v for k, v in mk.secret.items() if k != "draw"})
    with pytest.raises(MalformedInputError, match="not been drawn yet"):
        claim(undrawn, early)


def test_the_registry_draws_a_key_once(claim_setup):
    registry, owner, mk, _ = claim_setup
    size = registry.size
    with pytest.raises(RegistryError, match="already drawn"):
        draw(registry, mk, owner)
    assert registry.size == size


def test_a_draw_by_another_owner_is_refused(claim_setup, monkeypatch):
    """Bob draws alice's key before she does (a draw is taken once, whoever asks): her
    claims cannot use his draw, neither through make_claim nor past the verifier."""
    registry, owner, _, claim = claim_setup
    bob = Identity.generate("bob", seed=b"\x22" * 32)
    mk, receipt = draw(registry, drawn_key({**PARAMS, "tau": 0.1}), bob)
    registration = register(registry, mk, owner)
    with pytest.raises(MalformedInputError, match="drawn by another owner"):
        claim(mk, registration)
    # An owner's tool without make_claim's check: the verifier refuses the bundle.
    import claimkit.claim.make as make
    seed = make.draw_seed(receipt, mk.verification_key, SECRET, registry.log_key)
    monkeypatch.setattr(make, "_draw", lambda *_: (receipt, SECRET, seed))
    with pytest.raises(VerificationError, match="by another owner"):
        verify_claim(claim(mk, registration), log_key=registry.log_key)


def test_drawn_keys_items_queries_and_bundles_match_the_schemas(claim_setup):
    import jsonschema

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_spec_vectors import validate

    schema = json.loads((VECTORS.parent / "schemas" / "ubw.json").read_text())

    def valid(instance, name):
        jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{name}"}).validate(instance)

    registry, _, mk, claim = claim_setup
    valid(mk.verification_key.params, "params")
    bundle = claim()
    for opening, query in zip(bundle.predicate.openings, bundle.predicate.queries):
        valid(opening.value, "item")
        valid(query, "query")
    validate("claim-statement.json", bundle.statement.to_dict())
    with pytest.raises(jsonschema.ValidationError):
        valid({**mk.verification_key.params, "trigger_commitment": "AB" * 32}, "params")


def test_a_registered_key_with_a_malformed_commitment_is_malformed_input(claim_setup):
    """The registry logs a key by its digest alone, so an owner can register a key whose
    commitment is no hex at all. The verifier checks the key's parameters before it reads
    the commitment (a non-ASCII one made hmac.compare_digest raise TypeError, a traceback),
    and draw_seed compares bytes."""
    from claimkit.claim.bundle import (CLAIM_PREDICATE, PAYLOAD_TYPE, Answers, ClaimPredicate,
                                       Statement)
    from claimkit.claim.drawn import TriggerDrawOpening, draw_seed
    from claimkit.dsse import sign_envelope
    from claimkit.registry.entries import ClaimIntent, opened_items
    from claimkit.wire import Digest, canonical_json

    registry, owner, _, _ = claim_setup
    mk, receipt = draw(registry, drawn_key({**PARAMS, "trigger_commitment": "\u00e9" * 64}), owner)
    registration = register(registry, mk, owner)
    suspect = Digest(hashlib.sha256(b"suspect").digest())
    intent = ClaimIntent(owner.public, registration.index, registration.entry.digest, suspect, 0, 4)
    announced = registry.announce_claim(intent, sign_request(intent, owner))
    size = announced.checkpoint.size
    opened = opened_items(registration.entry.request, announced.entry,
                          announced.proof.checkpoint, registry.log_key)
    predicate = ClaimPredicate(
        mk.verification_key, registration, announced,
        tuple(registry.consistency_proof(registration.checkpoint.size, size)), mk.open(opened),
        (), Answers("owner", ()), {},
        TriggerDrawOpening(receipt, SECRET, tuple(registry.consistency_proof(
            receipt.checkpoint.size, size))))
    statement = Statement("suspect-model", suspect, CLAIM_PREDICATE, predicate.to_dict())
    bundle = ClaimBundle.from_json(sign_envelope(canonical_json(statement.to_dict()),
                                                 PAYLOAD_TYPE, owner).to_json())
    with pytest.raises(MalformedInputError, match="64 lowercase hex"):
        verify_claim(bundle, log_key=registry.log_key)
    with pytest.raises(VerificationError, match="does not match the key's commitment"):
        draw_seed(receipt, mk.verification_key, SECRET, registry.log_key)


def test_a_draw_in_another_registry_is_refused_before_the_intent(claim_setup, tmp_path):
    """Drawn in registry B, registered in A: make_claim checks the draw under A's log key
    before the intent spends any item (the verifier would refuse the bundle)."""
    registry, owner, _, claim = claim_setup
    other = Registry.init(tmp_path / "other", origin="test.example/other", passphrase=PASSPHRASE,
                          clock=FakeClock(), key_strength="min")
    mk, _ = draw(other, drawn_key({**PARAMS, "tau": 0.15}), owner)
    other.close()
    registration = register(registry, mk, owner)
    size = registry.size
    with pytest.raises(VerificationError, match="origin"):
        claim(mk, registration)
    assert registry.size == size and registry.claims_made(registration.index) == 0


def test_a_draw_in_a_fork_of_this_log_is_refused_before_the_intent(claim_setup, tmp_path):
    """Drawn in a fork (same origin, same log key, another history), registered here: the
    draw verifies under the log key, but its tree head is not this registry's, so
    make_claim refuses before the intent spends any item."""
    registry, owner, _, claim = claim_setup
    fork = Registry.init(tmp_path / "fork", origin=registry.origin, passphrase=PASSPHRASE,
                         clock=FakeClock(), key_strength="min", log_seed=LOG_SEED)
    register(fork, drawn_key({**PARAMS, "tau": 0.05}), owner)
    mk, receipt = draw(fork, drawn_key({**PARAMS, "tau": 0.2}), owner)
    fork.close()
    assert receipt.checkpoint.size <= registry.size
    assert registry.root_at(receipt.checkpoint.size) != receipt.checkpoint.root_hash
    registration = register(registry, mk, owner)
    size = registry.size
    with pytest.raises(MalformedInputError, match="not in this registry's history"):
        claim(mk, registration)
    assert registry.size == size and registry.claims_made(registration.index) == 0


def test_a_draw_receipt_given_as_the_registration_is_refused_before_the_intent(claim_setup):
    """A trigger draw names the key's digest too; make_claim wants a registration."""
    from claimkit.registry.receipt import Receipt
    registry, _, mk, claim = claim_setup
    receipt = Receipt.from_dict(mk.secret["draw"])
    size = registry.size
    with pytest.raises(MalformedInputError, match="the receipt is not for a registration"):
        claim(mk, receipt)
    assert registry.size == size


def test_a_drawn_key_without_its_trigger_secret_is_refused_before_the_intent(claim_setup):
    registry, _, mk, claim = claim_setup
    registration = registry.receipt(1)
    keyless = MarkingKey(mk.scheme, mk.params, mk.items,
                         {k: v for k, v in mk.secret.items() if k != "trigger_secret"})
    size = registry.size
    with pytest.raises(MalformedInputError, match="not been drawn yet"):
        claim(keyless, registration)
    assert registry.size == size
