"""An independent claim-bundle verifier, written from protocol_spec/*.md alone.

It was first written by a reviewer who read the specification and not claimkit's code
(2026-12-07), then cleaned up; every rule below cites the section it implements. It
imports the standard library, ``rfc8785`` and ``PyNaCl`` only, and never ``claimkit``:
tests/test_spec_interop.py runs it on bundles claimkit makes, so that the spec and the
code cannot drift apart unnoticed. Where this file and claimkit disagree, one of them
(or the spec's text) is wrong, and the spec is the reference.

What it implements:

* encoding.md: strict JSON (duplicate members, NaN/Infinity, depth 32, UTF-8, size
  limits, unknown or missing members of the objects it reads), canonical base64.
* registry.md: entries and requests, the owner's request signature, RFC 9162 Merkle
  hashing and proofs (§2.1.3.2 inclusion, §2.1.4.2 consistency), C2SP signed-note,
  tlog-checkpoint and tlog-proof, receipts.
* challenge.md: the seed (from the intent checkpoint's origin, size, root and log
  signature) and the selection.
* commitments.md: item commitments, the verification key's digest, openings.
* bundle.md *Verify* steps 1-8: the DSSE envelope and in-toto statement, both receipts,
  the binding of key, registration and intent, the consistency proof, the owner's DSSE
  signature, a drawn key's ``trigger_draw`` (step 6), the challenge's openings, the
  queries, and *Evidence* (every member, exact or within 1e-9 relative for the
  floating-point statistics).
* Evidence recomputed for ``trigger-set`` (bundle.md, *Decision for label-matching
  schemes*, *Numbers*, *Trigger-set items and queries*), ``ubw-p`` (ubw.md,
  *Verification key*, *Items and queries*, *Answers*, *Decision*), ``ubw-c`` keys
  without fresh triggers, whose decision is UBW-P's, and ``ubw-c`` keys with K fresh
  triggers (ubw.md *Fresh triggers*: squares and warping fields, the membership checks
  of the opened items, the queries naming the challenge seed, K + 2 answers, the rank
  test in exact rationals and its conjunction with Prop. 1) whose trigger is the owner's
  or drawn from the log (*Drawn triggers*: the draw's receipt, index, tree head and
  consistency, the secret against ``trigger_commitment``, the trigger seed, and the
  drawn square or field put into the queries; fresh squares and fields are derived in
  pure Python, as *Fresh squares* and *Fresh fields* define them); ``move``, black-box and
  white-box (move.md: the meta-classifier C on the features of the answers, then
  ubw.md's paired-t-margin on the scores and the references) and ``ewe`` (ewe.md: the
  binomial tail at ``fpr``, exact as bundle.md's *Numbers* say). MOVE's white-box
  features come from the suspect's gradients: the verifier checks their range and
  recomputes C on them, and cannot check the gradients themselves.

Its Student t tail and incomplete beta function are its own (continued fraction, in
log space), not scipy's: within 1e-10 relative of scipy's where scipy is accurate, and
the statistics are otherwise computed as the spec says (exact rationals where it says so).

``warp`` is ubw.md's *The warp* for an answerer (binary64; the bicubic kernel's A =
−0.75 and taps clamped at the border, which the text left open until this verifier
asked); ``verify`` never calls it, as a verifier reads the answers.

What it does not cover. A scheme it does not know ends ``verify`` with a failed "covered
by this verifier" check, never a pass. Not checked, as *Verify* does not require them:
witness cosignatures and the registry's time cosignature (skipped signature lines of the
checkpoint note), the registry's audit (``spent`` is taken from the intent entry as
logged, and that a key was drawn once), an arbiter's own answers and control models,
and anything bundle.md says about what an accepted claim shows.

Usage: ``python verify_from_spec.py BUNDLE LOG_VKEY_FILE`` (exit 0 iff every check
passes; the last check's info says accept or reject), or ``verify(bundle_bytes,
log_vkey_line)`` → ``[(check name, passed, info), ...]``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import struct
import sys
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Callable

import rfc8785
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

__all__ = ["verify", "main", "Malformed"]

MAX_BUNDLE = 256 << 20          # encoding.md *Strict parsing*; bundle.md *Bundle*
MAX_DEPTH = 32                  # encoding.md *Strict parsing*
MAX_INT = (1 << 53) - 1         # encoding.md *Canonical JSON*
FLOAT_TOLERANCE = 1e-9          # bundle.md step 8
# bundle.md step 8: the evidence members computed in floating point.
COMPUTED = frozenset({"statistic", "p_value", "p_t", "p_bound", "p_prop1", "mean_difference",
                      "sd_difference", "rate", "success_rate", "delta_p", "delta_mu",
                      "mean_score", "mean_reference", "computed observations"})
COMPUTED_LIST = "computed observations"    # step 8: "observations computed from the answers"
PAYLOAD_TYPE = "application/vnd.in-toto+json"           # bundle.md *Bundle*
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
CLAIM_PREDICATE = "https://claimkit.dev/claim/v1"


class Malformed(ValueError):
    """The bundle (or the log key) breaks a rule of the spec that is not a check's
    yes/no outcome: it cannot be read far enough to check the rest."""


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def jcs(value: Any) -> bytes:
    """encoding.md *Canonical JSON*: RFC 8785."""
    return rfc8785.dumps(value)


# -- encoding.md ------------------------------------------------------------------------
def b64d(text: Any, what: str, size: int | None = None) -> bytes:
    """encoding.md *Binary values*: standard base64, padded, canonical."""
    if not isinstance(text, str):
        raise Malformed(f"{what}: expected a base64 string")
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise Malformed(f"{what}: not base64 ({exc})") from None
    if base64.b64encode(data).decode() != text:
        raise Malformed(f"{what}: non-canonical base64")
    if size is not None and len(data) != size:
        raise Malformed(f"{what}: expected {size} bytes, got {len(data)}")
    return data


def b64e(data: bytes) -> str:
    return base64.b64encode(data).decode()


def strict_json(data: bytes, what: str, limit: int) -> Any:
    """encoding.md *Strict parsing*: UTF-8, no duplicate member, no NaN/Infinity, depth
    at most 32, size within the limit."""
    if len(data) > limit:
        raise Malformed(f"{what}: {len(data)} bytes, above the limit {limit}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed(f"{what}: not UTF-8") from None

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise Malformed(f"{what}: duplicate member {key!r}")
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise Malformed(f"{what}: constant {name} is not JSON")

    depth = deepest = 0          # counted on the text, before the parser recurses
    in_string = escaped = False
    for ch in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                raise Malformed(f"{what}: nested deeper than {MAX_DEPTH} levels")
        elif ch in "]}":
            depth -= 1
    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise Malformed(f"{what}: not JSON ({exc})") from None


def members(obj: Any, what: str, required: set[str], optional: frozenset[str] = frozenset()
            ) -> dict[str, Any]:
    """encoding.md *Strict parsing*: no unknown and no missing member (member sets
    from the spec's object definitions and protocol_spec/schemas)."""
    if not isinstance(obj, dict):
        raise Malformed(f"{what}: expected an object")
    missing = required - set(obj)
    unknown = set(obj) - required - optional
    if missing or unknown:
        raise Malformed(f"{what}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    return obj


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def uint(value: Any, what: str) -> int:
    """encoding.md *Canonical JSON*: wire integers lie in [0, 2^53 - 1]."""
    if not is_int(value) or not 0 <= value <= MAX_INT:
        raise Malformed(f"{what}: expected an integer in [0, 2^53-1]")
    return value


def string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise Malformed(f"{what}: expected a string")
    return value


def hex_digest(obj: Any, what: str) -> str:
    """encoding.md *Digests*: {"sha256": 64 lowercase hex digits}."""
    members(obj, what, {"sha256"})
    h = obj["sha256"]
    if not (isinstance(h, str) and len(h) == 64 and all(c in "0123456789abcdef" for c in h)):
        raise Malformed(f"{what}.sha256: expected 64 lowercase hex digits")
    return h


def lp(data: bytes) -> bytes:
    """commitments.md: LP(b) = uint64_be(len(b)) || b."""
    return struct.pack(">Q", len(data)) + data


# -- RFC 9162 §2.1 (registry.md *Merkle tree*) -------------------------------------------
def leaf_hash(data: bytes) -> bytes:
    return sha256(b"\x00" + data)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes,
                       proof: list[bytes]) -> bool:
    """RFC 9162 §2.1.4.2 (size1 = size2: an empty proof and equal roots)."""
    if size1 > size2 or size1 == 0:
        return False
    if size1 == size2:
        return not proof and root1 == root2
    if not proof:
        return False
    if size1 & (size1 - 1) == 0:
        proof = [root1] + proof
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == root1 and sr == root2 and sn == 0


# -- C2SP signed-note, tlog-checkpoint, tlog-proof (registry.md) -------------------------
def parse_vkey(line: str) -> tuple[str, bytes, bytes]:
    """A C2SP vkey ``name+keyid+base64(type || key)``; challenge.md *Seed*: the log key
    MUST be an Ed25519 note key (type 0x01)."""
    parts = line.strip().split("+", 2)       # the name holds no "+"; base64 may
    if len(parts) != 3:
        raise Malformed("log key: expected name+keyid+key")
    name, kid_hex, key = parts
    raw = b64d(key, "log key")
    if len(raw) != 33 or raw[0] != 0x01:
        raise Malformed("log key: not an Ed25519 note key (type 0x01)")
    kid = sha256(name.encode() + b"\n" + raw)[:4]
    if kid.hex() != kid_hex:
        raise Malformed("log key: key ID does not match the key")
    return name, kid, raw[1:]


def verify_note(note: str, vkey: tuple[str, bytes, bytes]) -> tuple[str, bytes]:
    """C2SP signed-note under the log key → (text, the 64-byte signature). Lines by other
    keys (the time key, witnesses) are skipped; challenge.md *Seed*: exactly one line by
    the log key."""
    name, kid, pub = vkey
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise Malformed("signed note: no signature block")
    text, block = note[:cut + 1], note[cut + 2:-1]
    mine = []
    for line in block.split("\n"):
        if not line.startswith("\u2014 ") or line.count(" ") != 2:
            raise Malformed("signed note: bad signature line")
        signer, sig = line[2:].split(" ")
        raw = b64d(sig, "signed note signature")
        if signer == name and raw[:4] == kid:
            mine.append(raw[4:])
    if len(mine) != 1:
        raise Malformed(f"signed note: {len(mine)} lines by the log key, expected 1")
    if len(mine[0]) != 64:
        raise Malformed("signed note: the log key's signature is not 64 bytes")
    VerifyKey(pub).verify(text.encode(), mine[0])     # BadSignatureError if forged
    return text, mine[0]


def parse_tlog_proof(proof: Any, vkey: tuple[str, bytes, bytes]) -> dict[str, Any]:
    """C2SP tlog-proof@v1 whose checkpoint (C2SP tlog-checkpoint: origin, decimal size,
    base64 root) verifies under the log key, whose name is the origin (registry.md
    *Checkpoints*)."""
    head, sep, note = string(proof, "tlog_proof").partition("\n\n")
    lines = head.split("\n")
    if not sep or lines[0] != "c2sp.org/tlog-proof@v1":
        raise Malformed("tlog_proof: not c2sp.org/tlog-proof@v1")
    j = 2 if len(lines) > 1 and lines[1].startswith("extra ") else 1
    if len(lines) <= j or not lines[j].startswith("index "):
        raise Malformed("tlog_proof: no index line")
    index = decimal(lines[j][6:], "tlog_proof index")
    hashes = [b64d(h, "tlog_proof hash", 32) for h in lines[j + 1:]]
    text, sig = verify_note(note, vkey)
    body = text.split("\n")
    if len(body) < 4:
        raise Malformed("checkpoint: expected origin, size and root lines")
    if body[0] != vkey[0]:
        raise Malformed("checkpoint: origin is not the log key's name")
    return {"index": index, "hashes": hashes, "origin": body[0],
            "size": decimal(body[1], "checkpoint size"), "root": b64d(body[2], "checkpoint root", 32),
            "signature": sig}


def decimal(text: str, what: str) -> int:
    if not text.isdigit() or not text.isascii() or str(int(text)) != text:
        raise Malformed(f"{what}: expected a decimal integer")
    return int(text)


def owner_key(owner: Any, what: str) -> str:
    members(owner, what, {"name", "public_key"})
    string(owner["name"], what + ".name")
    b64d(owner["public_key"], what + ".public_key", 32)
    return owner["public_key"]


def check_request(req: Any, what: str) -> None:
    """registry.md *Requests and entries* (member sets: schemas/log-entry.json)."""
    kind = req.get("kind") if isinstance(req, dict) else None
    if kind == "registration":
        members(req, what, {"kind", "owner", "scheme", "verification_key", "items"}, frozenset({"subject"}))
        string(req["scheme"], what + ".scheme")
        hex_digest(req["verification_key"], what + ".verification_key")
        uint(req["items"], what + ".items")
        if "subject" in req:
            hex_digest(req["subject"], what + ".subject")
    elif kind == "claim-intent":
        members(req, what, {"kind", "owner", "registration", "suspect", "counter", "open"})
        members(req["registration"], what + ".registration", {"index", "entry"})
        uint(req["registration"]["index"], what + ".registration.index")
        hex_digest(req["registration"]["entry"], what + ".registration.entry")
        hex_digest(req["suspect"], what + ".suspect")
        uint(req["counter"], what + ".counter")
        uint(req["open"], what + ".open")
    elif kind == "trigger-draw":
        members(req, what, {"kind", "owner", "scheme", "verification_key"})
        string(req["scheme"], what + ".scheme")
        hex_digest(req["verification_key"], what + ".verification_key")
    else:
        raise Malformed(f"{what}.kind: unknown request kind {kind!r}")
    owner_key(req["owner"], what + ".owner")


def receipt(rc: Any, vkey: tuple[str, bytes, bytes], what: str, add: Callable[..., bool]
            ) -> dict[str, Any]:
    """registry.md *Receipts*: the checkpoint's signature by the log key, the inclusion of
    SHA-256(0x00 || JCS(entry)), the entry's request signature by its owner."""
    members(rc, what, {"type", "entry", "tlog_proof"})
    if rc["type"] != "claimkit/receipt/v1":
        raise Malformed(f"{what}.type: expected claimkit/receipt/v1")
    entry = members(rc["entry"], what + ".entry", {"type", "request", "signature", "time_ms"},
                    frozenset({"spent"}))
    if entry["type"] != "claimkit/log-entry/v1":
        raise Malformed(f"{what}.entry.type: expected claimkit/log-entry/v1")
    check_request(entry["request"], what + ".entry.request")
    uint(entry["time_ms"], what + ".entry.time_ms")
    # registry.md: `spent`, a sorted list of items, only on claim intents
    if ("spent" in entry) != (entry["request"]["kind"] == "claim-intent"):
        raise Malformed(f"{what}.entry.spent: present iff the entry is a claim intent")
    spent = entry.get("spent", [])
    if not isinstance(spent, list) or any(not is_int(i) or i < 0 for i in spent) \
            or spent != sorted(set(spent)):
        raise Malformed(f"{what}.entry.spent: expected a sorted list of item indices")
    try:
        tp = parse_tlog_proof(rc["tlog_proof"], vkey)
    except BadSignatureError:
        add(what + ": checkpoint signed by the log key", False, "bad signature")
        raise Malformed(f"{what}: checkpoint signature does not verify") from None
    add(what + ": checkpoint signed by the log key", True, f"size {tp['size']}")
    add(what + ": inclusion proof",
        verify_inclusion(tp["index"], tp["size"], leaf_hash(jcs(entry)), tp["hashes"], tp["root"]),
        f"index {tp['index']} of {tp['size']}")
    req = entry["request"]
    try:
        VerifyKey(b64d(req["owner"]["public_key"], "public_key", 32)).verify(
            b"claimkit/request/v1\n" + jcs(req), b64d(entry["signature"], what + ".signature", 64))
        ok = True
    except BadSignatureError:
        ok = False
    add(what + ": request signed by its owner", ok)
    return tp


# -- challenge.md -------------------------------------------------------------------------
def challenge_seed(vk: dict[str, Any], cp: dict[str, Any], suspect: str, counter: int) -> bytes:
    """challenge.md *Seed*."""
    return sha256(b"claimkit/challenge/v2\n" + jcs({
        "verification_key": {"sha256": sha256(jcs(vk)).hex()},
        "log": {"origin": cp["origin"], "size": cp["size"], "root": b64e(cp["root"]),
                "signature": b64e(cp["signature"])},
        "suspect": {"sha256": suspect},
        "counter": counter}))


def select(seed: bytes, items: int, spent: list[int], k: int) -> list[int]:
    """challenge.md *Selection*."""
    excluded = set(spent)
    pool = [i for i in range(items) if i not in excluded]
    if k < 1 or k > len(pool):
        raise Malformed(f"intent.open: {k} items of {len(pool)} unspent")
    words: list[int] = []
    block = 0

    def below(n: int) -> int:
        nonlocal block
        limit = 2**64 - (2**64 % n)
        while True:
            if not words:
                chunk = sha256(seed + struct.pack(">Q", block))
                block += 1
                words.extend(struct.unpack(">4Q", chunk)[::-1])
            v = words.pop()
            if v < limit:
                return v % n

    for i in range(k):
        j = i + below(len(pool) - i)
        pool[i], pool[j] = pool[j], pool[i]
    return sorted(pool[:k])


# -- commitments.md -----------------------------------------------------------------------
def commit(nonce: bytes, value: Any) -> bytes:
    return sha256(lp(b"claimkit/item-commitment/v1") + lp(nonce) + lp(jcs(value)))


# -- Statistics -------------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                    -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            return h
    raise ArithmeticError("incomplete beta: no convergence")


def _log_beta(a: float, b: float) -> float:
    if float(a).is_integer() and float(b).is_integer():     # B(a, b) = 1 / (a·C(a+b-1, a))
        a_, b_ = int(a), int(b)
        return -math.log(a_) - math.log(math.comb(a_ + b_ - 1, a_))
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def betainc(a: float, b: float, log_x: float, log_1mx: float) -> float:
    """The regularised incomplete beta function I_x(a, b), x given by log x and
    log(1 - x) so that tails far below the smallest normal double keep their digits."""
    x, y = math.exp(log_x), math.exp(log_1mx)
    front = a * log_x + b * log_1mx - _log_beta(a, b)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(front + math.log(_betacf(a, b, x) / a))
    return 1.0 - math.exp(front + math.log(_betacf(b, a, y) / b))


def t_sf(t: float, df: int) -> float:
    """P[T_df >= t] for Student's t: I_{df/(df+t²)}(df/2, 1/2) / 2 for t > 0."""
    if t == 0:
        return 0.5
    nu, at = float(df), abs(t)
    log_den = (2 * math.log(at) + math.log1p(nu / (at * at)) if at > 1e150
               else math.log(nu + at * at))
    log_x, log_1mx = math.log(nu) - log_den, 2 * math.log(at) - log_den
    half = 0.5 * betainc(nu / 2, 0.5, log_x, log_1mx)
    return half if t > 0 else 1.0 - half


def sqrt_fraction(q: Fraction) -> float:
    """√q for a rational q ≥ 0, to within an ulp (integer square root at 64 extra bits)."""
    if q == 0:
        return 0.0
    shift = max(0, 2 * (q.denominator.bit_length() - q.numerator.bit_length()) + 256)
    shift += shift & 1
    root = math.isqrt((q.numerator << shift) // q.denominator)
    return root / (1 << (shift // 2)) if root else 0.0


def binomial_tail(m: int, n: int, p0: Fraction) -> tuple[float, bool]:
    """bundle.md *Numbers*: P[X >= m], X ~ Bin(n, p0), exact (summed in rationals and
    rounded once) iff m = 0, or n <= 20,000 and n·bitlength(denominator) <= 400,000;
    else I_{p0}(m, n - m + 1) in double precision."""
    if m == 0:
        return 1.0, True
    a, b = p0.numerator, p0.denominator
    if n <= 20_000 and n * b.bit_length() <= 400_000:
        num = sum(math.comb(n, i) * a**i * (b - a) ** (n - i) for i in range(m, n + 1))
        return num / b**n, True
    return betainc(float(m), float(n - m + 1), math.log(a / b), math.log((b - a) / b)), False


def close(a: Any, b: Any) -> bool:
    """bundle.md step 8: within 1e-9 relative; a number beyond the double range never."""
    if not (is_number(a) and is_number(b)):
        return False
    try:
        return math.isclose(float(a), float(b), rel_tol=FLOAT_TOLERANCE, abs_tol=0.0)
    except OverflowError:
        return False


def same(expected: Any, got: Any, key: str = "") -> bool:
    """bundle.md step 8: the same members, strings and booleans, and numbers (an integer
    and a float of equal value are one number) exactly, except those in COMPUTED."""
    if isinstance(expected, dict):
        return isinstance(got, dict) and set(expected) == set(got) and all(
            same(v, got[k], k) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(got, list) and len(expected) == len(got) and all(
            same(e, g, key) for e, g in zip(expected, got))
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        return type(got) is type(expected) and got == expected
    if key in COMPUTED:
        return close(expected, got)
    return is_number(got) and expected == got


def diff(expected: dict[str, Any], got: Any) -> str:
    if not isinstance(got, dict):
        return "not an object"
    bad = [k for k in sorted(set(expected) | set(got))
           if k not in expected or k not in got or not same(expected[k], got[k], k)]
    return ", ".join(f"{k}: bundle {got.get(k, '(absent)')!r:.80} vs spec "
                     f"{expected.get(k, '(absent)')!r:.80}" for k in bad)


def evidence(scheme: str, answers: list[Any], test: str, statistic: Any, df: int | None,
             p_value: float, alpha: float, params: dict[str, Any], details: dict[str, Any]
             ) -> dict[str, Any]:
    """bundle.md *Evidence*: the one shape of every scheme's evidence."""
    reject = p_value < alpha
    return {"scheme": scheme, "observations": answers,
            "result": {"test": test, "statistic": statistic, "df": df, "p_value": p_value,
                       "alpha": alpha, "reject_null": reject, "params": params},
            "details": details, "decision": "accept" if reject else "reject"}


def number_param(params: dict[str, Any], name: str, lo: float, hi: float, *,
                 lo_open: bool = False, hi_open: bool = False, default: Any = None) -> Any:
    if name not in params and default is not None:
        return default
    v = params.get(name)
    if not is_number(v) or not math.isfinite(float(v)) or v < lo or v > hi \
            or (lo_open and v == lo) or (hi_open and v == hi):
        raise Malformed(f"verification_key.params.{name}: {v!r} outside the spec's range")
    return v


def image_size(params: dict[str, Any]) -> int:
    """``input_shape`` ``[C, H, W]``, each in [1, 4096] (bundle.md *Parameters* of trigger
    sets, ubw.md, move.md and ewe.md *Verification key*) → C·H·W, the bytes of every image."""
    shape = params.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 3
            and all(is_int(d) and 1 <= d <= 4096 for d in shape)):
        raise Malformed("verification_key.params.input_shape: expected [C, H, W] in [1, 4096]")
    return shape[0] * shape[1] * shape[2]


# -- trigger-set: bundle.md *Decision for label-matching schemes*, *Trigger-set items* ---
def trigger_set(vk: dict[str, Any], openings: list[dict[str, Any]], answers: list[Any],
                **_: Any) -> tuple[list[Any], dict[str, Any]]:
    p = vk["params"]
    classes = p.get("num_classes")
    if not is_int(classes) or not 2 <= classes <= 1 << 20:
        raise Malformed("verification_key.params.num_classes: expected an integer in [2, 2^20]")
    alpha = number_param(p, "alpha", 0, 0.5, lo_open=True, default=0.01)
    epsilon = number_param(p, "epsilon", 0, 1, default=0.1)
    if "p0" in p:
        p0_double = float(number_param(p, "p0", 1e-12, 1 - 1e-12))
        p0 = Fraction(p0_double)                    # *Numbers*: the double's binary value
        if p0 < Fraction(1, classes):
            raise Malformed("verification_key.params.p0: below 1/num_classes")
    else:
        p0 = Fraction(1, classes)
    size = image_size(p)                            # *Trigger-set items and queries*
    queries = []
    for o in openings:
        value = members(o["value"], f"opening[{o['index']}].value", {"image", "label"})
        b64d(value["image"], f"opening[{o['index']}].value.image", size)
        label = value["label"]
        if not is_int(label) or not 0 <= label < classes:
            raise Malformed(f"opening[{o['index']}].value.label: expected a class index")
        queries.append(value["image"])
    if len(answers) != len(openings):
        raise Malformed(f"answers: {len(answers)} for {len(openings)} opened items")
    for i, a in enumerate(answers):
        if not is_int(a) or not 0 <= a < classes:
            raise Malformed(f"answers[{i}]: expected a class index below {classes}")
    n = len(answers)
    m = sum(a == o["value"]["label"] for a, o in zip(answers, openings))
    p_value, exact = binomial_tail(m, n, p0)
    eps = Fraction(repr(float(epsilon)))            # *Numbers*: the decimal it prints as
    abe = n - m <= math.floor(eps * n)
    ev = evidence("trigger-set", answers, "binomial", m, None, p_value, alpha,
                  {"n": n, "k": m, "p0": float(p0),
                   "p0_exact": f"{p0.numerator}/{p0.denominator}", "exact": exact},
                  {"matches": m, "n": n, "p0": float(p0), "epsilon": epsilon,
                   "all_but_epsilon": abe})
    return queries, ev


# -- ubw.md *Decision*: the paired t-test with margin (also MOVE's, move.md *Decision*) --
def paired_t_margin(pairs: list[Any], tau: float
                    ) -> tuple[float, int | None, float, dict[str, Any]]:
    """ubw.md *Decision* on pairs (x_i, y_i) of numbers in [0, 1], d_i = x_i − y_i − τ:
    exact rationals of the doubles, then t and p_bound → (statistic, df, p, params)."""
    n = len(pairs)
    tau_q = Fraction(tau)
    diffs = [Fraction(x) - Fraction(y) for x, y in pairs]
    d = [x - tau_q for x in diffs]
    mean_diff = sum(diffs, Fraction(0)) / n
    mean_d = mean_diff - tau_q
    ss = sum(((x - mean_d) ** 2 for x in d), Fraction(0))
    sd = sqrt_fraction(ss / (n - 1))
    bound = Fraction(1)
    for x in diffs:
        if 1 + x == 0:
            bound = Fraction(1)
            break
        bound *= (1 + tau_q) / (1 + x)
    p_bound = float(min(Fraction(1), bound))
    params: dict[str, Any] = {"tau": tau, "m": n, "mean_difference": float(mean_diff),
                              "sd_difference": sd, "p_bound": p_bound}
    if ss == 0:                                      # every d_i equal: the bound alone
        params["method"] = "bound"
        return float(d[0]), None, p_bound, params
    t2 = mean_d * mean_d * n * (n - 1) / ss          # t² = mean(d)² n (n−1) / Σ(d − mean)²
    biggest = sys.float_info.max
    t = biggest if t2 > Fraction(biggest) ** 2 else sqrt_fraction(t2)
    t = math.copysign(t, mean_d) if mean_d else 0.0
    p_t = t_sf(t, n - 1)
    params.update(method="t", p_t=p_t)
    return t, n - 1, max(p_t, p_bound), params


# -- ubw-p and ubw-c: ubw.md ---------------------------------------------------------------
FRESH_DOMAIN = b"claimkit/ubw-fresh/v1\n"                 # ubw.md *Fresh squares*
FIELD_DOMAIN = b"claimkit/ubw-fresh-field/v1\n"           # ubw.md *Fresh fields*
COMMITMENT_DOMAIN = b"claimkit/trigger-commitment/v1\n"   # ubw.md *Drawn triggers*, *The key*
TRIGGER_DOMAIN = b"claimkit/trigger/v1\n"                 # ubw.md *Drawn triggers*, *The draw*


def fresh_pattern(seed: bytes, side: int, j: int) -> bytes:
    """ubw.md *Fresh squares*: pattern j, side² bytes 0/255 row-major, of the least
    attempt a whose square has both colours."""
    blocks = -(-side * side // 256)
    for a in range(1 << 32):
        bits = b"".join(sha256(FRESH_DOMAIN + seed + struct.pack(">III", j, a, b))
                        for b in range(blocks))
        square = bytes(255 if bits[i >> 3] >> (7 - (i & 7)) & 1 else 0
                       for i in range(side * side))
        if 0 in square and 255 in square:
            return square
    raise ArithmeticError("fresh square: no attempt with both colours")


def fresh_field(seed: bytes, grid: int, j: int) -> list[float]:
    """ubw.md *Fresh fields*: field j, n = 2k² doubles (shape (k, k, 2), row-major)."""
    n = 2 * grid * grid
    stream = b"".join(sha256(FIELD_DOMAIN + seed + struct.pack(">II", j, b))
                      for b in range(-(-8 * n // 32)))
    words = struct.unpack(f">{n}Q", stream[:8 * n])
    v = [2 * ((w >> 11) * 2.0**-53) - 1 for w in words]          # exact
    scale = math.fsum(abs(x) for x in v) / n                     # fsum, one division by n
    return [x / scale for x in v]                                # one division per value


def pack_field(values: list[float]) -> bytes:
    """ubw.md *Items and queries*: k·k·2 little-endian IEEE 754 doubles."""
    return struct.pack(f"<{len(values)}d", *values)


def trigger_seed(secret: bytes, size: int, root: bytes, signature: bytes) -> bytes:
    """ubw.md *The draw*: SHA-256(domain || s || uint64_be(j + 1) || root || signature),
    j + 1 the size of the tree head that ends with the draw."""
    return sha256(TRIGGER_DOMAIN + secret + struct.pack(">Q", size) + root + signature)


class Fresh:
    """ubw.md *Verification key*: a ubw-c key's fresh triggers (K > 0), their kind
    (``side`` for squares, ``grid`` and ``strength`` for warping fields) and whether
    the key's trigger is drawn from the log."""

    def __init__(self, count: int, side: int, grid: int, strength: float, drawn: bool):
        self.count, self.side, self.grid, self.strength, self.drawn = (
            count, side, grid, strength, drawn)


def is_hex64(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(
        c in "0123456789abcdef" for c in value)


def fresh_params(p: dict[str, Any], scheme: str, alpha: float, shape: list[int]
                 ) -> Fresh | None:
    """ubw.md *Verification key*: the rules for ``fresh``, ``side``, ``grid``,
    ``warp_strength`` and ``trigger_commitment``; None for a key without fresh triggers."""
    what = "verification_key.params"
    # "MUST reject a key whose fresh is present but not an integer (null included)"
    if "fresh" in p and (not is_int(p["fresh"]) or not 0 <= p["fresh"] <= 10_000):
        raise Malformed(what + ".fresh: expected an integer in [0, 10000]")
    count = p.get("fresh", 0)
    if "trigger_commitment" in p:
        # "whose trigger_commitment is present without fresh > 0 or is not 64 lowercase hex"
        if count == 0:
            raise Malformed(what + ".trigger_commitment: present without fresh > 0")
        if not is_hex64(p["trigger_commitment"]):
            raise Malformed(what + ".trigger_commitment: expected 64 lowercase hex digits")
    if count == 0:
        # Guess: side, grid and warp_strength of a key without fresh triggers are "other
        # members of params", ignored by the decision.
        return None
    if scheme != "ubw-c":                             # "whose scheme is not ubw-c"
        raise Malformed(what + ".fresh: fresh triggers are ubw-c's only")
    if Fraction(1, count + 1) > Fraction(alpha):      # "compared as rationals"
        raise Malformed(what + f".fresh: 1/(K + 1) = 1/{count + 1} above alpha; the rank "
                        "test could never accept")
    if ("side" in p) == ("grid" in p):                # "both or neither of side and grid"
        raise Malformed(what + ": exactly one of side and grid")
    top = min(shape[1], shape[2])                     # [2, min(H, W)]
    if "side" in p:
        # Guess: with side, a warp_strength member is another member of params, ignored.
        return Fresh(count, int_param(p, "side", 2, top), 0, 0.0, "trigger_commitment" in p)
    grid = int_param(p, "grid", 2, top)
    s = p.get("warp_strength")                        # "finite number > 0"
    if not is_number(s) or not math.isfinite(float(s)) or not s > 0:
        raise Malformed(what + f".warp_strength: {s!r} is not a finite number > 0")
    return Fresh(count, 0, grid, s, "trigger_commitment" in p)


def check_place(value: dict[str, Any], fresh: Fresh, shape: list[int], what: str
                ) -> tuple[int, int]:
    """ubw.md *Items and queries*: "place": [r, c], 0 ≤ r ≤ H − side, 0 ≤ c ≤ W − side."""
    place = value["place"]
    if not (isinstance(place, list) and len(place) == 2 and all(is_int(x) for x in place)):
        raise Malformed(what + ".place: expected [r, c], two integers")
    r, c = place
    if not (0 <= r <= shape[1] - fresh.side and 0 <= c <= shape[2] - fresh.side):
        raise Malformed(what + f".place: {place} puts the square outside the image")
    return r, c


def paste(image: bytes, square: bytes, r: int, c: int, side: int, shape: list[int]) -> bytes:
    """ubw.md *Queries*: the square pasted at (r, c) in every channel (its bytes replace
    the image's)."""
    channels, h, w = shape
    out = bytearray(image)
    for ch in range(channels):
        for y in range(side):
            at = (ch * h + r + y) * w + c
            out[at:at + side] = square[y * side:(y + 1) * side]
    return bytes(out)


def square_membership(image: bytes, triggered: bytes, r: int, c: int, side: int,
                      shape: list[int], what: str) -> bytes:
    """ubw.md *Membership (squares)*: ``triggered`` equals ``image`` outside the square at
    ``place``; inside it every channel holds one pattern of bytes 0 and 255, both
    present → that pattern."""
    channels, h, w = shape
    square = bytes(triggered[(r + y) * w + c + x] for y in range(side) for x in range(side))
    if paste(image, square, r, c, side, shape) != triggered:
        # equal to the pasted square iff equal outside it and the same in every channel
        outside = any(triggered[i] != image[i] for i in range(len(image))
                      if not (r <= (i // w) % h < r + side and c <= i % w < c + side))
        raise Malformed(what + (": triggered differs from image outside the square" if outside
                                else ": the square differs between channels"))
    if set(square) - {0, 255}:
        raise Malformed(what + ": the square has bytes other than 0 and 255")
    if not (0 in square and 255 in square):
        raise Malformed(what + ": the square is of one colour")
    return square


def field_membership(raw: bytes, grid: int, what: str) -> None:
    """ubw.md *Membership (fields)*: k·k·2 finite doubles whose mean absolute value,
    fsum(|f|) / (2k²), is 1 within 1e-9."""
    n = 2 * grid * grid
    values = struct.unpack(f"<{n}d", raw)
    if not all(math.isfinite(x) for x in values):
        raise Malformed(what + ".field: not all finite")
    mean = math.fsum(abs(x) for x in values) / n
    # Guess: "is 1 within 1e-9" read as |mean − 1| ≤ 1e-9
    if not abs(mean - 1) <= 1e-9:
        raise Malformed(what + f".field: mean absolute value {mean!r}, not 1 within 1e-9")


def ubw_items(openings: list[dict[str, Any]], classes: int, shape: list[int],
              fresh: Fresh | None, challenge: bytes, trigger: bytes | None) -> list[Any]:
    """ubw.md *Items and queries* (and, with fresh triggers, *Membership*, *Queries*, and
    *Drawn triggers* *Claims*) → the queries."""
    size = shape[0] * shape[1] * shape[2]
    if fresh is None:
        names = {"image", "label", "triggered"}
    elif fresh.side:
        names = {"image", "label", "place"} | (set() if fresh.drawn else {"triggered"})
    else:
        names = {"image", "label"} | (set() if fresh.drawn else {"field"})
    key_trigger: Any = None
    if fresh is not None and fresh.drawn:             # *Claims*: the drawn trigger
        if trigger is None:
            raise Malformed("a drawn key's queries need its trigger seed (bundle.md step 6)")
        key_trigger = (fresh_pattern(trigger, fresh.side, 0) if fresh.side
                       else b64e(pack_field(fresh_field(trigger, fresh.grid, 0))))
    queries = []
    for o in openings:
        what = f"opening[{o['index']}].value"
        # strict members: a drawn key's item with "triggered" or "field" is refused
        value = members(o["value"], what, names)
        image = b64d(value["image"], what + ".image", size)
        if not is_int(value["label"]) or not 0 <= value["label"] < classes:
            raise Malformed(what + ".label: expected a class index")
        if fresh is None:
            b64d(value["triggered"], what + ".triggered", size)
            queries.append(value)
            continue
        query = dict(value)
        if fresh.side:
            r, c = check_place(value, fresh, shape, what)
            if fresh.drawn:
                query["triggered"] = b64e(paste(image, key_trigger, r, c, fresh.side, shape))
            else:
                triggered = b64d(value["triggered"], what + ".triggered", size)
                square = square_membership(image, triggered, r, c, fresh.side, shape, what)
                if key_trigger is None:
                    key_trigger = square
                elif square != key_trigger:       # "the same in every opened item"
                    raise Malformed(what + ": the square differs from the first item's")
        elif fresh.drawn:
            query["field"] = key_trigger
        else:
            raw = b64d(value["field"], what + ".field", 16 * fresh.grid * fresh.grid)
            field_membership(raw, fresh.grid, what)
            if key_trigger is None:
                key_trigger = raw
            elif raw != key_trigger:                # "the same field bytes"
                raise Malformed(what + ".field: differs from the first item's")
        # *Queries*: the value plus "fresh": {"seed": hex(seed), "count": K}
        query["fresh"] = {"seed": challenge.hex(), "count": fresh.count}
        queries.append(query)
    return queries


def units(x: Any) -> int:
    """ubw.md: every answer is a double, so an exact dyadic rational: x · 2^1074, an
    integer for every double in [0, 1] (and for a JSON integer)."""
    num, den = Fraction(x).as_integer_ratio()
    return num * ((1 << 1074) // den)


def rank_test(answers: list[Any], count: int) -> tuple[Fraction, Fraction, list[Fraction]]:
    """ubw.md *Fresh triggers*, *Decision*: D_0 = mean(P_b − P_p), D_j = mean(P_b − P_j),
    exact; p_rank = (1 + #{j ≥ 1: D_j ≥ D_0}) / (K + 1), ties against the key."""
    n = len(answers)
    sums = [0] * (count + 2)                         # Σ_i P_·,i in units of 2^-1074
    for a in answers:
        for j, x in enumerate(a):
            sums[j] += units(x)
    d = [Fraction(sums[0] - sums[j], n << 1074) for j in range(1, count + 2)]
    d_key, d_fresh = d[0], d[1:]
    p_rank = Fraction(1 + sum(dj >= d_key for dj in d_fresh), count + 1)
    return p_rank, d_key, d_fresh


def median(values: list[Fraction]) -> Fraction:
    """ubw.md *Fresh triggers*, evidence: for an even K the mean of the two middle values."""
    s, k = sorted(values), len(values)
    return s[k // 2] if k % 2 else (s[k // 2 - 1] + s[k // 2]) / 2


# -- ubw.md *The warp* (for an answerer: Verify reads the answers and never warps) --------
def _cubic(x: float) -> float:
    """The cubic convolution kernel with A = −0.75 (ubw.md *The warp*)."""
    a, x = -0.75, abs(x)
    if x <= 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return 0.0


def _upsample(values: list[list[float]], rows: int, cols: int) -> list[list[float]]:
    """Bicubic, align_corners=True, k × k → rows × cols, the taps beyond the border
    clamped to it (ubw.md *The warp*)."""
    k = len(values)

    def taps(i: int, n: int) -> list[tuple[int, float]]:
        src = i * (k - 1) / (n - 1) if n > 1 else 0.0
        i0 = math.floor(src)
        t = src - i0
        return [(min(max(i0 + d, 0), k - 1), _cubic(t - d)) for d in (-1, 0, 1, 2)]

    across = [taps(j, cols) for j in range(cols)]
    wide = [[sum(row[c] * w for c, w in tj) for tj in across] for row in values]
    return [[sum(wide[r][j] * w for r, w in taps(i, rows)) for j in range(cols)]
            for i in range(rows)]


def warp(image: bytes, shape: list[int], field: list[float], grid: int, strength: float) -> bytes:
    """ubw.md *The warp*: WaNet's generator. f (k, k, 2) as two channels (x offsets, y
    offsets) upsampled to H × W; grid = identity + s · up / H, the identity (x, y) from
    −1 to 1 across the W columns and the H rows, clamped to [−1, 1]; the image sampled
    bilinearly there (align_corners=True, zero padding), rounded half to even, clamped to
    0–255. In binary64 (claimkit: float32; "the same images up to rounding")."""
    channels, h, w = shape
    up = [_upsample([[field[(r * grid + c) * 2 + axis] for c in range(grid)]
                     for r in range(grid)], h, w) for axis in (0, 1)]
    out = bytearray(len(image))
    for i in range(h):
        for j in range(w):
            x = -1 + 2 * j / (w - 1) if w > 1 else 0.0
            y = -1 + 2 * i / (h - 1) if h > 1 else 0.0
            x = min(1.0, max(-1.0, x + strength * up[0][i][j] / h))
            y = min(1.0, max(-1.0, y + strength * up[1][i][j] / h))
            ix, iy = (x + 1) / 2 * (w - 1), (y + 1) / 2 * (h - 1)
            x0, y0 = math.floor(ix), math.floor(iy)
            for ch in range(channels):
                total = 0.0
                for yy, wy in ((y0, 1 - (iy - y0)), (y0 + 1, iy - y0)):
                    for xx, wx in ((x0, 1 - (ix - x0)), (x0 + 1, ix - x0)):
                        if 0 <= yy < h and 0 <= xx < w:              # zero padding
                            total += image[(ch * h + yy) * w + xx] * wy * wx
                out[(ch * h + i) * w + j] = min(255, max(0, round(total)))
    return bytes(out)

def ubw(vk: dict[str, Any], openings: list[dict[str, Any]], answers: list[Any], *,
        challenge: bytes = b"", trigger: bytes | None = None
        ) -> tuple[list[Any], dict[str, Any]]:
    p, scheme = vk["params"], vk["scheme"]
    classes = p.get("num_classes")                  # *Verification key*
    if not is_int(classes) or not 2 <= classes <= 100_000:
        raise Malformed("verification_key.params.num_classes: expected an integer in [2, 100000]")
    image_size(p)
    shape = p["input_shape"]
    tau = number_param(p, "tau", 0, 1, hi_open=True)
    alpha = number_param(p, "alpha", 0, 0.5, lo_open=True)
    if "m" in p and (not is_int(p["m"]) or not 2 <= p["m"] <= 1 << 20):
        raise Malformed("verification_key.params.m: expected an integer in [2, 1048576]")
    fresh = fresh_params(p, scheme, alpha, shape)
    # *Items and queries*, *Membership*, *Queries*
    queries = ubw_items(openings, classes, shape, fresh, challenge, trigger)
    if len(answers) != len(openings):                # *Answers*
        raise Malformed(f"answers: {len(answers)} for {len(openings)} opened items")
    width = 2 if fresh is None else fresh.count + 2  # *Fresh triggers*, *Answers*: K + 2
    for i, a in enumerate(answers):
        if not (isinstance(a, list) and len(a) == width and all(
                is_number(x) and 0 <= x <= 1 for x in a)):
            raise Malformed(f"answers[{i}]: expected {width} numbers in [0, 1]")
    n = len(answers)
    if n < 2:
        raise Malformed("ubw: at least 2 opened items")
    statistic, df, p_prop1, params = paired_t_margin([a[:2] for a in answers], tau)
    details = {"pairs": n, "tau": tau, "delta_p": params["mean_difference"]}
    if fresh is None:                                # *Decision*: Prop. 1 alone
        ev = evidence(scheme, answers, "paired-t-margin", statistic, df, p_prop1, alpha, params,
                      details)
        return queries, ev
    # *Fresh triggers*, *Decision*: an intersection–union test, p the larger of the two
    p_rank, d_key, d_fresh = rank_test(answers, fresh.count)
    accepted = p_prop1 < alpha and p_rank <= Fraction(alpha)       # "as rationals"
    rank = float(p_rank)                             # "correctly rounded"
    params.update(p_prop1=p_prop1, p_rank=rank, fresh=fresh.count)
    details.update(fresh=fresh.count, p_prop1=p_prop1, p_rank=rank, d_key=float(d_key),
                   d_fresh_median=float(median(d_fresh)), d_fresh_max=float(max(d_fresh)))
    ev = evidence(scheme, answers, "paired-t-margin-and-rank", statistic, df,
                  max(p_prop1, rank), alpha, params, details)
    ev["result"]["reject_null"] = accepted           # bundle.md *Evidence*: the conjunction
    ev["decision"] = "accept" if accepted else "reject"
    return queries, ev


# -- move: move.md ------------------------------------------------------------------------
MOVE_AUGMENTATIONS = ("identity", "hflip", "shift-down-right", "shift-right", "shift-down")
MOVE_MODES = MappingProxyType({    # mode → (features, the mode's own members)
    "black-box": ("probability-difference/v1", {"augmentations"}),
    "white-box": ("gradient-sign/v1", {"arch", "feature_size"})})


def int_param(params: dict[str, Any], name: str, lo: int, hi: int | None = None) -> int:
    """An integer member of ``params`` in [lo, hi]."""
    v = params.get(name)
    if not is_int(v) or v < lo or (hi is not None and v > hi):
        raise Malformed(f"verification_key.params.{name}: {v!r} outside the spec's range")
    return v


def meta_classifier(obj: Any, inputs: int) -> tuple[int, int, list[float]]:
    """move.md *Verification key*: {"inputs": F, "hidden": H, "weights"}, F in [1, 65536]
    and equal to ``inputs``, H in [1, 1024], weights 4·(H·F + 2H + 1) bytes of finite
    little-endian float32 → (F, H, the values as binary64)."""
    what = "verification_key.params.meta_classifier"
    members(obj, what, {"inputs", "hidden", "weights"})
    f, h = obj["inputs"], obj["hidden"]
    if not (is_int(f) and 1 <= f <= 65536 and is_int(h) and 1 <= h <= 1024):
        raise Malformed(what + ": inputs in [1, 65536], hidden in [1, 1024]")
    if f != inputs:
        raise Malformed(f"{what}.inputs: {f}, the key's features are {inputs}")
    count = h * f + 2 * h + 1
    raw = b64d(obj["weights"], what + ".weights", 4 * count)
    weights = list(struct.unpack(f"<{count}f", raw))      # float32 → binary64, exactly
    if not all(math.isfinite(w) for w in weights):
        raise Malformed(what + ".weights: not all finite")
    return f, h, weights


def sigmoid(z: float) -> float:
    """move.md: σ(z) = 1/(1 + e^−z) for z ≥ 0 and e^z/(1 + e^z) otherwise."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def meta_score(f: int, h: int, weights: list[float], features: list[float]) -> float:
    """move.md: C(f) = σ(w2 · relu(W1 f + b1) + b2) in binary64, every dot product (bias
    included) summed exactly rounded (math.fsum) over the products of binary64 values."""
    w1, b1 = weights[:h * f], weights[h * f:h * f + h]
    w2, b2 = weights[h * f + h:h * f + 2 * h], weights[-1]
    hidden = [max(0.0, math.fsum([w * x for w, x in zip(w1[j * f:(j + 1) * f], features)]
                                 + [b1[j]])) for j in range(h)]
    return sigmoid(math.fsum([w * x for w, x in zip(w2, hidden)] + [b2]))


def move_features(answer: Any, mode: str, classes: int, inputs: int, i: int) -> list[float]:
    """move.md *Answers*: black-box, 10 vectors of K numbers in [0, 1] → the 5·K
    differences p(T_a x′) − p(T_a x), a-major; white-box, F numbers in [−1, 1]."""
    what = f"answers[{i}]"
    if mode == "black-box":
        if not (isinstance(answer, list) and len(answer) == 2 * len(MOVE_AUGMENTATIONS)
                and all(isinstance(v, list) and len(v) == classes and all(
                    is_number(x) and 0 <= x <= 1 for x in v) for v in answer)):
            raise Malformed(what + f": expected 10 vectors of {classes} numbers in [0, 1]")
        a = len(MOVE_AUGMENTATIONS)
        return [float(answer[k][c]) - float(answer[a + k][c])
                for k in range(a) for c in range(classes)]
    if not (isinstance(answer, list) and len(answer) == inputs
            and all(is_number(x) and -1 <= x <= 1 for x in answer)):
        raise Malformed(what + f": expected {inputs} numbers in [-1, 1]")
    return [float(x) for x in answer]


def move(vk: dict[str, Any], openings: list[dict[str, Any]], answers: list[Any],
         **_: Any) -> tuple[list[Any], dict[str, Any]]:
    p = vk["params"]
    mode = p.get("mode")                             # *Verification key*
    if not isinstance(mode, str) or mode not in MOVE_MODES:
        raise Malformed("verification_key.params.mode: expected black-box or white-box")
    features, own = MOVE_MODES[mode]
    # "MUST reject a key with a missing ... member": alpha, tau and min_queries too (their
    # "default" is KeyGen's; the table marks none of them optional)
    members(p, "verification_key.params",
            {"mode", "num_classes", "input_shape", "data", "data_digest", "alpha", "tau",
             "min_queries", "style_commitment", "features", "meta_classifier"} | own)
    classes = int_param(p, "num_classes", 2, 65536)
    size = image_size(p)
    string(p["data"], "verification_key.params.data")
    string(p["data_digest"], "verification_key.params.data_digest")
    alpha = number_param(p, "alpha", 0, 0.5, lo_open=True)
    tau = number_param(p, "tau", 0, 0.99)
    min_queries = int_param(p, "min_queries", 2, 1_000_000)
    hex_digest(p["style_commitment"], "verification_key.params.style_commitment")
    if p["features"] != features:
        raise Malformed(f"verification_key.params.features: {mode} is {features}")
    if mode == "black-box":
        if p["augmentations"] != list(MOVE_AUGMENTATIONS):
            raise Malformed("verification_key.params.augmentations: not §5.3's five")
        inputs = len(MOVE_AUGMENTATIONS) * classes
    else:
        string(p["arch"], "verification_key.params.arch")
        inputs = int_param(p, "feature_size", 1, 65536)
    f, h, weights = meta_classifier(p["meta_classifier"], inputs)
    queries, references = [], []                     # *Items and queries*
    for o in openings:
        what = f"opening[{o['index']}].value"
        other = "source" if mode == "black-box" else "label"
        value = members(o["value"], what, {"image", other, "reference"})
        b64d(value["image"], what + ".image", size)
        if mode == "black-box":
            b64d(value["source"], what + ".source", size)
        elif not is_int(value["label"]) or not 0 <= value["label"] < classes:
            raise Malformed(what + ".label: expected a class index")
        ref = value["reference"]
        if not is_number(ref) or not 0 <= ref <= 1:
            raise Malformed(what + ".reference: expected a number in [0, 1]")
        queries.append({k: v for k, v in value.items() if k != "reference"})
        references.append(ref)
    if len(answers) != len(openings):                # *Answers*
        raise Malformed(f"answers: {len(answers)} for {len(openings)} opened items")
    scores = [meta_score(f, h, weights, move_features(a, mode, classes, inputs, i))
              for i, a in enumerate(answers)]
    n = len(scores)                                  # *Decision*
    if n < min_queries:
        raise Malformed(f"move: {n} opened items, fewer than min_queries = {min_queries}")
    statistic, df, p_value, params = paired_t_margin(list(zip(scores, references)), tau)
    mean_score = math.fsum(scores) / n
    mean_reference = math.fsum(map(float, references)) / n
    ev = evidence("move", scores, "paired-t-margin", statistic, df, p_value, alpha, params,
                  {"mode": mode, "m": n, "tau": tau, "reference_scores": references,
                   "mean_score": mean_score, "mean_reference": mean_reference,
                   # *Evidence*: the result's mean_difference, not the difference of
                   # the two rounded means
                   "delta_mu": params["mean_difference"]})
    return queries, ev


# -- ewe: ewe.md ----------------------------------------------------------------------------
def ewe(vk: dict[str, Any], openings: list[dict[str, Any]], answers: list[Any],
        **_: Any) -> tuple[list[Any], dict[str, Any]]:
    p = vk["params"]                                 # *Verification key*
    # "MUST reject a key with a missing ... member": only fpr is marked optional
    members(p, "verification_key.params",
            {"num_classes", "input_shape", "data", "data_digest", "source", "target", "alpha",
             "reference_false_rate", "min_queries"}, frozenset({"fpr"}))
    classes = int_param(p, "num_classes", 2, 65536)
    size = image_size(p)
    string(p["data"], "verification_key.params.data")
    string(p["data_digest"], "verification_key.params.data_digest")
    source = int_param(p, "source", 0, classes - 1)
    target = int_param(p, "target", 0, classes - 1)
    if source == target:
        raise Malformed("verification_key.params: source and target must differ")
    alpha = number_param(p, "alpha", 0, 0.5, lo_open=True)
    number_param(p, "reference_false_rate", 0, 1)
    min_queries = int_param(p, "min_queries", 1, 1_000_000)
    if "fpr" in p:                                   # the double's binary value (*Numbers*)
        fpr = Fraction(float(number_param(p, "fpr", 1e-12, 1 - 1e-12)))
    else:
        fpr = Fraction(1, classes)                   # exactly 1/K
    queries = []                                     # *Items, queries, answers*
    for o in openings:
        value = members(o["value"], f"opening[{o['index']}].value", {"image"})
        b64d(value["image"], f"opening[{o['index']}].value.image", size)
        queries.append(value["image"])
    if len(answers) != len(openings):
        raise Malformed(f"answers: {len(answers)} for {len(openings)} opened items")
    for i, a in enumerate(answers):
        if not is_int(a) or not 0 <= a < classes:
            raise Malformed(f"answers[{i}]: expected a class index below {classes}")
    n = len(answers)                                 # *Decision*
    if n < min_queries:
        raise Malformed(f"ewe: {n} answers, fewer than min_queries = {min_queries}")
    s = sum(a == target for a in answers)
    p_value, exact = binomial_tail(s, n, fpr)
    ev = evidence("ewe", answers, "success-rate", s, None, p_value, alpha,
                  {"n": n, "successes": s, "rate": s / n, "fpr": float(fpr),
                   "fpr_exact": f"{fpr.numerator}/{fpr.denominator}", "exact": exact},
                  {"target": target, "n": n, "successes": s, "success_rate": s / n,
                   "fpr": float(fpr)})
    return queries, ev


class NotCovered(Exception):
    """A part of the spec this verifier does not implement (see the module docstring)."""


SCHEMES = MappingProxyType({"trigger-set": trigger_set, "ubw-p": ubw, "ubw-c": ubw,
                            "move": move, "ewe": ewe})
# bundle.md step 8: schemes whose observations are computed from the answers (MOVE's
# scores), so compare within 1e-9 relative; the others copy the answers, exactly.
COMPUTED_OBSERVATIONS = frozenset({"move"})


# -- bundle.md step 6, ubw.md *Drawn triggers* ---------------------------------------------
def trigger_draw(pred: dict[str, Any], vk: dict[str, Any], vk_digest: str, reg: dict[str, Any],
                 rreq: dict[str, Any], intent: dict[str, Any], vkey: tuple[str, bytes, bytes],
                 add: Callable[..., bool]) -> bytes:
    """bundle.md step 6 and ubw.md *Claims*: the draw's receipt under the log key, its entry
    a trigger-draw of this key (digest and scheme) by the registered owner, its index below
    the registration's, its checkpoint of size index + 1, the consistency proof to the
    intent's checkpoint, and the secret against trigger_commitment → the trigger seed."""
    if not add("6. trigger_draw present for a key with trigger_commitment", "trigger_draw" in pred):
        raise Malformed("trigger_draw: absent for a key whose trigger is drawn")
    td = members(pred["trigger_draw"], "trigger_draw", {"receipt", "secret", "consistency"})
    commitment = vk["params"]["trigger_commitment"]
    if not is_hex64(commitment):                     # ubw.md *Verification key*
        raise Malformed("verification_key.params.trigger_commitment: expected 64 lowercase hex")
    draw = receipt(td["receipt"], vkey, "6. trigger draw receipt", add)
    dreq = td["receipt"]["entry"]["request"]
    add("6. trigger draw names the key (digest, scheme) and the registered owner",
        dreq["kind"] == "trigger-draw" and dreq["verification_key"]["sha256"] == vk_digest
        and dreq["scheme"] == vk["scheme"]
        and dreq["owner"]["public_key"] == rreq["owner"]["public_key"])
    add("6. trigger draw index below the registration's", draw["index"] < reg["index"],
        f"draw {draw['index']}, registration {reg['index']}")
    add("6. draw checkpoint size = draw index + 1", draw["size"] == draw["index"] + 1,
        f"size {draw['size']}, index {draw['index']}")
    if not isinstance(td["consistency"], list):
        raise Malformed("trigger_draw.consistency: expected a list")
    proof = [b64d(h, "trigger_draw.consistency", 32) for h in td["consistency"]]
    add("6. consistency: draw checkpoint -> intent checkpoint",
        verify_consistency(draw["size"], intent["size"], draw["root"], intent["root"], proof),
        f"{draw['size']} -> {intent['size']}")
    secret = b64d(td["secret"], "trigger_draw.secret", 32)
    add("6. secret opens trigger_commitment",                   # in constant time
        hmac.compare_digest(sha256(COMMITMENT_DOMAIN + secret), bytes.fromhex(commitment)))
    # ubw.md *The draw*: j + 1 = the draw checkpoint's size, its root and log signature
    return trigger_seed(secret, draw["size"], draw["root"], draw["signature"])


# -- bundle.md *Verify* -------------------------------------------------------------------
def verify(bundle_bytes: bytes, log_vkey_line: str) -> list[tuple[str, bool, str]]:
    """Check a claim bundle under a log key (the first line of a C2SP vkey file) by
    bundle.md *Verify*: ``[(check, passed, info), ...]``. The bundle is valid iff every
    check passed; the ``evidence.decision`` check's info is then ``accept`` or ``reject``.
    A malformed bundle ends the list with a failed ``malformed`` check."""
    rows: list[tuple[str, bool, str]] = []

    def add(name: str, ok: bool, info: str = "") -> bool:
        rows.append((name, bool(ok), info))
        return bool(ok)

    try:
        _verify(bundle_bytes, log_vkey_line, add)
    except NotCovered as exc:
        add("covered by this verifier", False, f"not covered: {exc}")
    except (Malformed, BadSignatureError, KeyError, TypeError, ValueError, IndexError,
            ArithmeticError) as exc:
        add("malformed", False, f"{type(exc).__name__}: {exc}")
    return rows


def _verify(bundle_bytes: bytes, log_vkey_line: str, add: Callable[..., bool]) -> None:
    vkey = parse_vkey(log_vkey_line)

    # 1. The envelope parses strictly; payloadType, _type, predicateType; one subject.
    env = members(strict_json(bundle_bytes, "bundle", MAX_BUNDLE), "envelope",
                  {"payload", "payloadType", "signatures"})
    add("1. payloadType", env["payloadType"] == PAYLOAD_TYPE, str(env["payloadType"])[:80])
    payload = b64d(env["payload"], "payload")
    statement = members(strict_json(payload, "payload", MAX_BUNDLE), "statement",
                        {"_type", "subject", "predicateType", "predicate"})
    add("1. payload is JCS(statement)", jcs(statement) == payload)
    subjects = statement["subject"]
    add("1. _type, predicateType, one subject",
        statement["_type"] == STATEMENT_TYPE and statement["predicateType"] == CLAIM_PREDICATE
        and isinstance(subjects, list) and len(subjects) == 1)
    subject = members(subjects[0], "subject[0]", {"name", "digest"})
    string(subject["name"], "subject[0].name")
    suspect = hex_digest(subject["digest"], "subject[0].digest")
    pred = members(statement["predicate"], "predicate",
                   {"verification_key", "registration", "intent", "consistency", "openings",
                    "queries", "answers", "evidence"}, frozenset({"trigger_draw"}))
    vk = members(pred["verification_key"], "verification_key",
                 {"type", "scheme", "params", "items", "commitment_root"})
    if vk["type"] != "claimkit/verification-key/v1" or not isinstance(vk["params"], dict):
        raise Malformed("verification_key: type or params")
    string(vk["scheme"], "verification_key.scheme")
    items = uint(vk["items"], "verification_key.items")
    commitment_root = b64d(vk["commitment_root"], "verification_key.commitment_root", 32)
    vk_digest = sha256(jcs(vk)).hex()

    # 2. Both receipts are valid under the log key.
    reg = receipt(pred["registration"], vkey, "2. registration receipt", add)
    intent = receipt(pred["intent"], vkey, "2. intent receipt", add)
    reg_entry, intent_entry = pred["registration"]["entry"], pred["intent"]["entry"]
    rreq, ireq = reg_entry["request"], intent_entry["request"]

    # 3. Registration ↔ key, intent ↔ registration, owner, suspect; intent size = index + 1.
    add("3. registration names the key (digest, scheme, items)",
        rreq["kind"] == "registration" and rreq["verification_key"]["sha256"] == vk_digest
        and rreq["scheme"] == vk["scheme"] and rreq["items"] == items)
    add("3. intent names the registration, its owner and the subject",
        ireq["kind"] == "claim-intent" and ireq["registration"]["index"] == reg["index"]
        and ireq["registration"]["entry"]["sha256"] == sha256(jcs(reg_entry)).hex()
        and ireq["owner"]["public_key"] == rreq["owner"]["public_key"]
        and ireq["suspect"]["sha256"] == suspect)
    add("3. intent checkpoint size = intent index + 1", intent["size"] == intent["index"] + 1,
        f"size {intent['size']}, index {intent['index']}")

    # 4. Registration checkpoint is a prefix of the intent checkpoint.
    if not isinstance(pred["consistency"], list):
        raise Malformed("consistency: expected a list")
    proof = [b64d(h, "consistency", 32) for h in pred["consistency"]]
    add("4. consistency: registration checkpoint -> intent checkpoint",
        verify_consistency(reg["size"], intent["size"], reg["root"], intent["root"], proof),
        f"{reg['size']} -> {intent['size']}")

    # 5. A valid DSSE signature by the registered owner key (bundle.md *Bundle*).
    owner_pub = b64d(rreq["owner"]["public_key"], "owner public key", 32)
    payload_type = string(env["payloadType"], "payloadType").encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type, len(payload), payload)
    keyid = sha256(owner_pub).hex()
    signed = False
    if not isinstance(env["signatures"], list):
        raise Malformed("signatures: expected a list")
    for s in env["signatures"]:
        members(s, "signature", {"keyid", "sig"})
        if s["keyid"] == keyid:
            try:
                VerifyKey(owner_pub).verify(pae, b64d(s["sig"], "sig", 64))
                signed = True
            except BadSignatureError:
                pass
    add("5. DSSE signature by the registered owner", signed)

    # 6. Drawn triggers (ubw.md *Drawn triggers*); for any other key trigger_draw is absent.
    drawn_seed = None
    if "trigger_commitment" in vk["params"]:
        drawn_seed = trigger_draw(pred, vk, vk_digest, reg, rreq, intent, vkey, add)
    else:
        add("6. no trigger_draw for a key without trigger_commitment", "trigger_draw" not in pred)

    # 7. Openings: the challenge's selection, each valid for the key.
    seed = challenge_seed(vk, intent, suspect, ireq["counter"])
    openings = pred["openings"]
    if not isinstance(openings, list):
        raise Malformed("openings: expected a list")
    for o in openings:
        members(o, "opening", {"index", "value", "nonce", "proof"})
        uint(o["index"], "opening.index")
        if not isinstance(o["proof"], list):
            raise Malformed("opening.proof: expected a list")
    selected = select(seed, items, intent_entry.get("spent", []), ireq["open"])
    add("7. openings are the challenge's selection", [o["index"] for o in openings] == selected,
        f"seed {seed.hex()[:16]}…, {len(selected)} items")
    valid = all(o["index"] < items and verify_inclusion(
        o["index"], items, leaf_hash(commit(b64d(o["nonce"], "opening.nonce", 32), o["value"])),
        [b64d(h, "opening.proof", 32) for h in o["proof"]], commitment_root) for o in openings)
    add("7. every opening commits under commitment_root", valid, f"{len(openings)} openings")

    # 8. Queries and evidence, recomputed by the scheme.
    answers = members(pred["answers"], "answers", {"observer", "values"})
    add("8. answers.observer is owner", answers["observer"] == "owner")
    if not isinstance(answers["values"], list):
        raise Malformed("answers.values: expected a list")
    scheme = SCHEMES.get(vk["scheme"])
    if scheme is None:
        raise NotCovered(f"scheme {vk['scheme']!r}")
    # the fresh triggers' seed is the challenge's (ubw.md *Fresh squares*), a drawn key's
    # trigger comes from step 6's seed (*Drawn triggers*, *Claims*)
    queries, expected = scheme(vk, openings, answers["values"], challenge=seed,
                               trigger=drawn_seed)
    add("8. queries derived from the openings", jcs(queries) == jcs(pred["queries"]))
    got = pred["evidence"]
    if not isinstance(got, dict):
        raise Malformed("evidence: expected an object")
    for part in ("scheme", "observations", "result", "details"):
        key = COMPUTED_LIST if part == "observations" and vk["scheme"] in COMPUTED_OBSERVATIONS \
            else part
        add(f"8. evidence.{part}", part in got and same(expected[part], got[part], key),
            "" if part not in ("result", "details") else diff(expected[part], got.get(part)))
    add("8. evidence has exactly the spec's members", set(got) == set(expected),
        ", ".join(sorted(set(got) ^ set(expected))))
    add("8. evidence.decision", got.get("decision") == expected["decision"],
        f"{expected['decision']} (p = {expected['result']['p_value']:.6g}, "
        f"alpha = {expected['result']['alpha']})")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python verify_from_spec.py BUNDLE LOG_VKEY_FILE", file=sys.stderr)
        return 2
    with open(args[0], "rb") as f:
        data = f.read()
    with open(args[1], encoding="utf-8") as f:
        line = f.read().split("\n")[0]
    rows = verify(data, line)
    for name, ok, info in rows:
        print(("PASS " if ok else "FAIL ") + name + (f"  [{info}]" if info else ""))
    failed = sum(not ok for _, ok, _ in rows)
    print(f"{len(rows) - failed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
