"""Regenerate this implementation's own vectors: python protocol_spec/vectors/generate.py

The vectors pin deterministic inputs (fixed seeds, nonces, clock) to the exact bytes and
hashes claimkit produces, so a second implementation can check itself against them and
claimkit's tests catch any change of wire format. Ed25519 signatures are deterministic
(RFC 8032), so signed objects are reproducible too.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from claimkit.commitments import ITEM_DOMAIN, CommittedItems, commit  # noqa: E402
from claimkit.identity import Identity  # noqa: E402
from claimkit.protocol.keys import VerificationKey  # noqa: E402
from claimkit.registry import merkle  # noqa: E402
from claimkit.registry.entries import LogEntry, Registration, sign_request  # noqa: E402
from claimkit.wire import b64encode, canonical_json  # noqa: E402


def nonce(i: int) -> bytes:
    return hashlib.sha256(b"vector nonce %d" % i).digest()


def commitments() -> dict:
    values = [{"input": f"x{i}", "label": i % 10} for i in range(5)]
    items = CommittedItems(tuple(values), tuple(nonce(i) for i in range(5)))
    vk = VerificationKey("trigger-set", {"num_classes": 10}, items.size, items.root)
    return {
        "domain": ITEM_DOMAIN,
        "items": [{"value": v, "nonce": nonce(i).hex(),
                   "commitment": commit(ITEM_DOMAIN, nonce(i), v).hex()} for i, v in enumerate(values)],
        "commitment_root": items.root.hex(),
        "verification_key": vk.to_dict(),
        "verification_key_jcs": canonical_json(vk.to_dict()).decode(),
        "verification_key_digest": vk.digest.hex,
        "opening_3": items.open(3).to_dict(),
    }


def registry() -> dict:
    owner = Identity.generate("alice", seed=bytes(range(32)))
    request = Registration(owner.public, "trigger-set", commitments_vk_digest(), 5)
    signature = sign_request(request, owner)
    entry = LogEntry(request, signature, 1_763_884_800_123)
    data = entry.to_bytes()
    return {
        "owner_seed": bytes(range(32)).hex(),
        "owner_public_key": b64encode(owner.public.public_key),
        "signed_message": (b"claimkit/request/v1\n" + canonical_json(request.to_dict())).decode(),
        "signature": b64encode(signature),
        "entry_bytes": data.decode(),
        "leaf_hash": merkle.leaf_hash(data).hex(),
    }


def commitments_vk_digest():
    from claimkit.wire import Digest
    return Digest(bytes.fromhex(commitments()["verification_key_digest"]))


def fresh_pattern(seed: bytes, side: int, j: int) -> tuple[str, int]:
    """Fresh square j of ``seed`` as ubw.md §Fresh squares says: its bits, its attempt."""
    for attempt in range(100):
        stream = b""
        block = 0
        while len(stream) * 8 < side * side:
            stream += hashlib.sha256(b"claimkit/ubw-fresh/v1\n" + seed + j.to_bytes(4, "big")
                                     + attempt.to_bytes(4, "big")
                                     + block.to_bytes(4, "big")).digest()
            block += 1
        bits = "".join(str((stream[k // 8] >> (7 - k % 8)) & 1) for k in range(side * side))
        if 0 < bits.count("1") < side * side:
            return bits, attempt
    raise AssertionError("no two-colour square in 100 attempts")


def fresh_field(seed: bytes, grid: int, j: int) -> list[float]:
    """Fresh field j of ``seed`` as ubw.md §Fresh fields says."""
    import math
    n = 2 * grid * grid
    stream, block = b"", 0
    while len(stream) < 8 * n:
        stream += hashlib.sha256(b"claimkit/ubw-fresh-field/v1\n" + seed + j.to_bytes(4, "big")
                                 + block.to_bytes(4, "big")).digest()
        block += 1
    words = [int.from_bytes(stream[8 * i:8 * i + 8], "big") for i in range(n)]
    v = [2.0 * math.ldexp(w >> 11, -53) - 1.0 for w in words]
    mean_abs = math.fsum(abs(x) for x in v) / n
    return [x / mean_abs for x in v]


def ubw_fresh() -> dict:
    """UBW-C's fresh squares (ubw.md §Fresh triggers), written out bit by bit from the
    spec's words rather than by claimkit's function, which the test then checks."""
    seed = hashlib.sha256(b"claimkit ubw-fresh vector seed").digest()
    cases = []
    for side, count in ((2, 16), (3, 2), (17, 2)):
        drawn = [fresh_pattern(seed, side, j) for j in range(count)]
        cases.append({"side": side, "count": count,
                      "patterns": [bits for bits, _ in drawn],
                      "attempts": [attempt for _, attempt in drawn]})
    return {"domain": "claimkit/ubw-fresh/v1\n", "seed": seed.hex(), "cases": cases,
            "note": "pattern bits row-major, '1' = white (255), '0' = black (0)"}


def ubw_fresh_fields() -> dict:
    """UBW-C's fresh warping fields (ubw.md §Fresh triggers), written out from the spec's
    words rather than by claimkit's function, which the test then checks: every value
    (JSON numbers are exact doubles) and the SHA-256 of the packed little-endian doubles."""
    import struct

    seed = hashlib.sha256(b"claimkit ubw-fresh-field vector seed").digest()
    cases = []
    for grid, count in ((2, 3), (3, 2), (16, 2)):
        fields = [fresh_field(seed, grid, j) for j in range(count)]
        case = {"grid": grid, "count": count,
                "sha256_le_f64": [hashlib.sha256(struct.pack(f"<{len(f)}d", *f)).hexdigest()
                                  for f in fields]}
        case["fields" if grid < 16 else "first_values"] = \
            fields if grid < 16 else [f[:4] for f in fields]
        cases.append(case)
    return {"domain": "claimkit/ubw-fresh-field/v1\n", "seed": seed.hex(), "cases": cases,
            "note": "each field's 2·grid² values in (grid, grid, 2) row-major order"}


def challenges() -> list:
    """Cut-and-choose seeds (challenge.md §Seed) from the spec's words, JCS by the rfc8785
    package rather than claimkit's wrapper, and the items each selects."""
    import base64

    import rfc8785

    from claimkit.challenge import select_items

    cases = []
    for vk, origin, size, root, signature, suspect, counter, items, spent, k in (
            ("01" * 32, "example.org/claimkit", 7, "02" * 32, "04" * 64, "03" * 32, 0, 100, [], 10),
            ("aa" * 32, "example.org/claimkit", 12345, "bb" * 32, "dd" * 64, "cc" * 32, 2, 64,
             [0, 1, 2, 3, 10, 20, 30], 5),
            ("00" * 32, "claimkit.local/registry", 1, "ff" * 32, "ee" * 64, "11" * 32, 0, 1, [], 1)):
        body = {"verification_key": {"sha256": vk},
                "log": {"origin": origin, "size": size,
                        "root": base64.b64encode(bytes.fromhex(root)).decode(),
                        "signature": base64.b64encode(bytes.fromhex(signature)).decode()},
                "suspect": {"sha256": suspect}, "counter": counter}
        seed = hashlib.sha256(b"claimkit/challenge/v2\n" + rfc8785.dumps(body)).digest()
        cases.append({"vk": vk, "origin": origin, "size": size, "root": root,
                      "signature": signature, "suspect": suspect, "counter": counter,
                      "seed": seed.hex(), "items": items, "spent": spent, "k": k,
                      "selected": list(select_items(seed, items=items, spent=spent, k=k))})
    return cases


def ubw_drawn() -> dict:
    """Drawn triggers (ubw.md §Drawn triggers), from the spec's words: the commitment, the
    trigger seed of a tree head, and the trigger (fresh trigger 0 of that seed) as bytes:
    a square's pixels (00 or ff, row-major), a field's little-endian doubles."""
    import struct

    cases = []
    for k, (size, shape) in enumerate(((1, {"side": 2}), (5, {"side": 7}), (1000, {"grid": 4}))):
        secret = hashlib.sha256(b"claimkit ubw-drawn vector secret %d" % k).digest()
        root = hashlib.sha256(b"claimkit ubw-drawn vector root %d" % k).digest()
        signature = hashlib.sha512(b"claimkit ubw-drawn vector signature %d" % k).digest()
        seed = hashlib.sha256(b"claimkit/trigger/v1\n" + secret + size.to_bytes(8, "big")
                              + root + signature).digest()
        case = {"secret": secret.hex(), "size": size, "root": root.hex(),
                "signature": signature.hex(),
                "commitment": hashlib.sha256(b"claimkit/trigger-commitment/v1\n"
                                             + secret).hexdigest(),
                "trigger_seed": seed.hex(), **shape}
        if "side" in shape:
            bits, _ = fresh_pattern(seed, shape["side"], 0)
            case["pattern"] = bytes(255 * int(b) for b in bits).hex()
        else:
            values = fresh_field(seed, shape["grid"], 0)
            case["field"] = struct.pack(f"<{len(values)}d", *values).hex()
        cases.append(case)
    return {"commitment_domain": "claimkit/trigger-commitment/v1\n",
            "seed_domain": "claimkit/trigger/v1\n", "cases": cases}


def main() -> None:
    (HERE / "commitments.json").write_text(json.dumps(commitments(), indent=2) + "\n")
    (HERE / "registry.json").write_text(json.dumps(registry(), indent=2) + "\n")
    (HERE / "ubw-fresh.json").write_text(json.dumps(ubw_fresh(), indent=2) + "\n")
    (HERE / "ubw-fresh-field.json").write_text(json.dumps(ubw_fresh_fields(), indent=2) + "\n")
    (HERE / "ubw-drawn.json").write_text(json.dumps(ubw_drawn(), indent=2) + "\n")
    (HERE / "challenge.json").write_text(json.dumps(challenges(), indent=2) + "\n")
    print("wrote commitments.json, registry.json, ubw-fresh.json, ubw-fresh-field.json, "
          "ubw-drawn.json, challenge.json")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()
