"""protocol_spec/vectors and protocol_spec/schemas hold for this implementation."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry as SchemaRegistry, Resource

from claimkit.commitments import ITEM_DOMAIN, ItemOpening, commit
from claimkit.identity import Identity
from claimkit.protocol.keys import VerificationKey
from claimkit.registry import merkle
from claimkit.registry.entries import LogEntry
from claimkit.wire import b64decode, canonical_json

SPEC = Path(__file__).resolve().parents[1] / "protocol_spec"
VECTORS = SPEC / "vectors"


def test_commitment_vectors():
    v = json.loads((VECTORS / "commitments.json").read_text())
    leaves = []
    for item in v["items"]:
        c = commit(v["domain"], bytes.fromhex(item["nonce"]), item["value"])
        assert c.hex() == item["commitment"]
        leaves.append(merkle.leaf_hash(c))
    assert merkle.reference_root(leaves).hex() == v["commitment_root"]
    vk = VerificationKey.from_dict(v["verification_key"])
    assert canonical_json(vk.to_dict()).decode() == v["verification_key_jcs"]
    assert vk.digest.hex == v["verification_key_digest"]
    vk.check_opening(ItemOpening.from_dict(v["opening_3"]))
    assert v["domain"] == ITEM_DOMAIN


def test_registry_vectors():
    v = json.loads((VECTORS / "registry.json").read_text())
    owner = Identity.generate("alice", seed=bytes.fromhex(v["owner_seed"]))
    assert owner.public.public_key == b64decode(v["owner_public_key"])
    data = v["entry_bytes"].encode()
    entry = LogEntry.from_bytes(data)
    entry.verify_signature()
    assert entry.signature == b64decode(v["signature"])
    assert owner.sign(v["signed_message"].encode()) == entry.signature
    assert merkle.leaf_hash(data).hex() == v["leaf_hash"]


def schema_registry() -> SchemaRegistry:
    resources = []
    for path in (SPEC / "schemas").glob("*.json"):
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return SchemaRegistry().with_resources(resources)


def validate(name: str, instance) -> None:
    registry = schema_registry()
    schema = registry.contents(f"https://claimkit.dev/schemas/v1/{name}")
    jsonschema.Draft202012Validator(schema, registry=registry).validate(instance)


def test_objects_match_their_schemas(registry, mk, registration, owner):
    from claimkit.claim.make import make_claim
    from claimkit.claim.verdict import make_verdict
    from claimkit.claim.verify import verify_claim
    from conftest import marked_model
    model = marked_model(mk)
    bundle = make_claim(registry, mk, registration, model.digest, ask=model.answer,
                        identity=owner, k=10)
    validate("verification-key.json", mk.verification_key.to_dict())
    validate("receipt.json", registration.to_dict())
    validate("dsse-envelope.json", bundle.envelope.to_dict())
    validate("claim-statement.json", bundle.statement.to_dict())
    arbiter = Identity.generate("arbiter", seed=b"\x22" * 32)
    verdict = make_verdict(bundle, verify_claim(bundle, log_key=registry.log_key), arbiter)
    validate("verdict-statement.json", json.loads(verdict.payload))
    # what `claimkit verify --sign-verdict` writes (bundle.md *Verdict*), with controls and
    # several bundles judged together
    digest = {"sha256": "ab" * 32}
    verdict = make_verdict(bundle, verify_claim(bundle, log_key=registry.log_key), arbiter,
                           checked_with={"log_key": registry.log_key.to_vkey(), "witness_keys": [],
                                         "max_alpha": None, "controls": [digest]},
                           competition={"bundles": [digest, digest], "earliest": None})
    validate("verdict-statement.json", json.loads(verdict.payload))


def test_schemas_reject_unknown_fields(mk):
    bad = {**mk.verification_key.to_dict(), "extra": 1}
    with pytest.raises(jsonschema.ValidationError):
        validate("verification-key.json", bad)
