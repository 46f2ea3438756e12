"""C2SP checkpoints and cosignature/v1: published known answers, strictness, tampering."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claimkit.errors import MalformedInputError, VerificationError
from claimkit.registry.checkpoint import (MAX_TIMESTAMP, MAX_TREE_SIZE, Checkpoint, SignedCheckpoint,
                                          cosign, cosigned_message, verify_cosignature)
from claimkit.registry.note import (ALG_COSIGNATURE_V1, NoteSignature, NoteSigner, SignedNote,
                                    VerifierKey, sign_note)

_DIR = Path(__file__).resolve().parents[2] / "protocol_spec" / "vectors" / "c2sp"
CP_VECTORS = json.loads((_DIR / "tlog-checkpoint.json").read_text(encoding="utf-8"))
COSIG_VECTORS = json.loads((_DIR / "tlog-cosignature.json").read_text(encoding="utf-8"))

# sigsum-go pkg/checkpoint/checkpoint_test.go (2224a397): the key is crypto.PrivateKey{17},
# i.e. the Ed25519 seed 0x11 || 31 zero bytes; TestCheckpointSigned / validCheckpointASCII.
SIGSUM_SEED = bytes([17]) + bytes(31)
SIGSUM_ORIGIN = "sigsum.org/v1/tree/e796172b92befd62d9dc67e41c2f5bc9d3100a3023b20b1ca40288dd1c679e69"
SIGSUM_ROOT = "HA5HAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
SIGSUM_CHECKPOINT = (f"{SIGSUM_ORIGIN}\n10\n{SIGSUM_ROOT}\n\n— {SIGSUM_ORIGIN} gJ2ho0n8F8olcerUF1FFdv235A/5"
                     "as/coWrpLrtE7ovMeP5whgwouYExowG/lTznxu6OUGjjt5yJQ6bXtTcf718MqAQ=\n").encode()
# Same file, TestCheckpointVerifyCosignatureByKey: the cosignature/v1 line made by
# TestCheckpointCosignVerify (witness "example.org/witness", timestamp 1234) over
# testCheckpoint, whose own log signature line is the placeholder below.
SIGSUM_COSIG_TEXT = f"example.org/log\n10\n{SIGSUM_ROOT}\n"
SIGSUM_LOG_PLACEHOLDER = "— example.org/log DEADBEEFAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"  # noqa: E501
SIGSUM_COSIG_LINE = ("— example.org/witness ys8uUAAAAAAAAATSftMzceM8zssdZ9jin9SjwIxzx9iADMf63VqirX2hafol9Rsq"
                     "NqbofIz0LVRqHXI2kpEBSki5RTXFtxz1vo9+Cg==")
# sum.golang.org/latest of 2024-09-23 and the checksum database key, as quoted by sigsum-go's
# TestGoSumDBCheckpoint (key from golang/go src/cmd/go/internal/modfetch/key.go).
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_CHECKPOINT = ("go.sum database tree\n30055305\nmXfgRcJ0bG0j3CPdKwgGWtUzBUbX67saZGRmFuJGGsM=\n\n"
                    "— sum.golang.org Az3grpgEild5qw7+5dtV13Kf1C2Xurm8q4fhdxvcsDHnqNTaxL2AFjBY+2TyGKevucFcAAlWFJJ"
                    "Yle3EJlDCrQ+y3A8=\n").encode()
# https://c2sp.org/tlog-cosignature example (C2SP/C2SP tlog-cosignature.md at 5ba5ee8).
SPEC_COSIGNED = ("example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
                 "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gG"
                 "zGku9nTo+zyWE+xeMcTOAYQ8=\n"
                 "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyi"
                 "n1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n").encode()

LOG = NoteSigner("example.org/log", bytes(range(32)))
WITNESS = NoteSigner.cosigner("example.org/witness", bytes(range(1, 33)))


def test_inline_vectors_are_the_json_vectors():
    cps = {v["name"]: v for v in CP_VECTORS["verify"]}
    assert cps["sigsum-valid-checkpoint"]["note"].encode() == SIGSUM_CHECKPOINT
    assert cps["sum.golang.org-2024-09-23"]["note"].encode() == SUMDB_CHECKPOINT
    assert cps["sum.golang.org-2024-09-23"]["vkey"] == SUMDB_VKEY
    cos = COSIG_VECTORS["verify"][0]
    assert (cos["line"], cos["checkpoint_text"], cos["timestamp"]) == (SIGSUM_COSIG_LINE, SIGSUM_COSIG_TEXT, 1234)
    assert cos["log_placeholder_line"] + "\n" == SIGSUM_LOG_PLACEHOLDER
    assert COSIG_VECTORS["parse_only"][0]["note"].encode() == SPEC_COSIGNED


# -- known answers ---------------------------------------------------------------------

@pytest.mark.parametrize("vector", CP_VECTORS["verify"], ids=lambda v: v["name"])
def test_published_checkpoints_verify(vector):
    data = vector["note"].encode()
    signed = SignedCheckpoint.from_bytes(data)
    assert signed.to_bytes() == data
    key = VerifierKey.from_vkey(vector["vkey"])
    cp = signed.verify(key, origin=vector["origin"])
    assert (cp.origin, cp.size, base64.b64encode(cp.root_hash).decode()) == (
        vector["origin"], vector["size"], vector["root_hash"])
    if "seed_hex" in vector:  # a derived vkey: the seed must give it
        assert NoteSigner(key.name, bytes.fromhex(vector["seed_hex"])).vkey == vector["vkey"]


def test_we_sign_the_sigsum_checkpoint_byte_for_byte():
    signer = NoteSigner(SIGSUM_ORIGIN, SIGSUM_SEED)
    cp = Checkpoint(SIGSUM_ORIGIN, 10, base64.b64decode(SIGSUM_ROOT))
    assert sign_note(cp.to_text(), signer).to_bytes() == SIGSUM_CHECKPOINT
    assert SignedCheckpoint.from_bytes(SIGSUM_CHECKPOINT).verify(signer.verifier_key) == cp


def test_sumdb_key_name_is_not_its_origin():
    signed = SignedCheckpoint.from_bytes(SUMDB_CHECKPOINT)
    key = VerifierKey.from_vkey(SUMDB_VKEY)
    with pytest.raises(VerificationError, match="origin"):
        signed.verify(key)  # by default the origin must be the key's name
    assert signed.verify(key, origin="go.sum database tree").size == 30055305


@pytest.mark.parametrize("vector", CP_VECTORS["parse_only"], ids=lambda v: v["name"])
def test_spec_checkpoint_example_parses(vector):
    data = vector["note"].encode()
    signed = SignedCheckpoint.from_bytes(data)
    cp = signed.checkpoint
    assert (cp.origin, cp.size, base64.b64encode(cp.root_hash).decode()) == (
        vector["origin"], vector["size"], vector["root_hash"])
    assert signed.to_bytes() == data


def test_sigsum_cosignature_verifies_and_we_reproduce_it():
    vector = COSIG_VECTORS["verify"][0]
    key = VerifierKey.from_vkey(vector["vkey"])
    assert key.alg == ALG_COSIGNATURE_V1
    signer = NoteSigner.cosigner("example.org/witness", SIGSUM_SEED)
    assert signer.vkey == vector["vkey"]
    cp = Checkpoint.from_text(SIGSUM_COSIG_TEXT)
    assert cosign(cp, signer, 1234).to_line() == SIGSUM_COSIG_LINE + "\n"
    # sigsum's other lines (other key ID; other name) must be ignored, not trusted or fatal.
    note = (SIGSUM_COSIG_TEXT + "\n" + SIGSUM_LOG_PLACEHOLDER
            + "".join(line + "\n" for line in vector["ignored_lines"]) + SIGSUM_COSIG_LINE + "\n").encode()
    signed = SignedCheckpoint.from_bytes(note)
    assert signed.to_bytes() == note
    assert verify_cosignature(signed, key) == 1234


def test_spec_cosignature_example_framing():
    vector = COSIG_VECTORS["parse_only"][0]
    signed = SignedCheckpoint.from_bytes(SPEC_COSIGNED)
    (line,) = [s for s in signed.note.signatures if s.name == vector["cosigner"]]
    assert line.key_hash.hex() == vector["key_id"]
    assert len(line.signature) == 8 + 64
    assert struct.unpack(">Q", line.signature[:8])[0] == vector["timestamp"]
    assert cosigned_message(signed.note.text, vector["timestamp"]) == vector["signed_message"].encode()


# -- checkpoint text -------------------------------------------------------------------

def test_text_format_is_gos():
    cp = Checkpoint("example.com/log", 20852163, bytes(range(32)), ("ext one", "ext+two"))
    assert cp.to_text() == ("example.com/log\n20852163\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
                            "ext one\next+two\n")
    assert Checkpoint.from_text(cp.to_text()) == cp


@pytest.mark.parametrize("size", ["00", "010", "+5", "-1", " 5", "5 ", "1_0", "٥", "0x10", "1e3",
                                  str(MAX_TREE_SIZE + 1), "9" * 5000, ""])
def test_bad_sizes(size):
    with pytest.raises(MalformedInputError):
        Checkpoint.from_text(f"o\n{size}\n{SIGSUM_ROOT}\n")


def test_size_bounds():
    assert Checkpoint.from_text(f"o\n0\n{SIGSUM_ROOT}\n").size == 0
    assert Checkpoint.from_text(f"o\n{MAX_TREE_SIZE}\n{SIGSUM_ROOT}\n").size == MAX_TREE_SIZE
    for bad in (-1, MAX_TREE_SIZE + 1, True, 1.0):
        with pytest.raises(MalformedInputError):
            Checkpoint("o", bad, bytes(32))  # type: ignore[arg-type]


@pytest.mark.parametrize("text", [
    f"o\n1\n{SIGSUM_ROOT}",                                       # no final newline
    "o\n1\n",                                                     # two lines
    f"\n1\n{SIGSUM_ROOT}\n",                                      # empty origin
    f"o\n1\n{SIGSUM_ROOT}\n\n",                                   # empty extension line
    f"o\n1\n{SIGSUM_ROOT}\next\n\nmore\n",
    "o\n1\nHA5HAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n",         # non-canonical base64
    "o\n1\nHA5HAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n",         # 31 bytes
    "o\n1\nHA5HAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",     # 34 bytes
    "o\n1\nHA5HAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",          # unpadded
    f"o\r\n1\r\n{SIGSUM_ROOT}\r\n",                               # CRLF
    f"o\t\n1\n{SIGSUM_ROOT}\n",                                   # control character in origin
])
def test_malformed_checkpoint_texts(text):
    with pytest.raises(MalformedInputError):
        Checkpoint.from_text(text)


def test_origin_may_hold_spaces_and_plus():
    cp = Checkpoint.from_text(f"go.sum database tree+x\n1\n{SIGSUM_ROOT}\n")
    assert cp.origin == "go.sum database tree+x"


def test_signed_checkpoint_requires_a_checkpoint_text():
    for text in ["hello\n", f"o\n01\n{SIGSUM_ROOT}\n"]:
        data = sign_note(text, LOG).to_bytes()
        SignedNote.from_bytes(data)
        with pytest.raises(MalformedInputError):
            SignedCheckpoint.from_bytes(data)
    cp = Checkpoint("example.org/log", 1, bytes(32))
    with pytest.raises(MalformedInputError):
        SignedCheckpoint(cp, sign_note("example.org/log\n2\n" + SIGSUM_ROOT + "\n", LOG))


# -- signatures ------------------------------------------------------------------------

def _signed(size: int = 7, extensions: tuple[str, ...] = ()) -> SignedCheckpoint:
    cp = Checkpoint(LOG.name, size, bytes([size % 256]) * 32, extensions)
    signed = SignedCheckpoint(cp, sign_note(cp.to_text(), LOG))
    return signed.with_signature(cosign(cp, WITNESS, 1_700_000_000))


def test_sign_verify_cosign_round_trip():
    signed = _signed(extensions=("ext",))
    data = signed.to_bytes()
    parsed = SignedCheckpoint.from_bytes(data)
    assert parsed == signed and parsed.to_bytes() == data
    assert parsed.verify(LOG.verifier_key) == signed.checkpoint
    assert verify_cosignature(parsed, WITNESS.verifier_key) == 1_700_000_000


def test_wrong_log_key_or_origin():
    signed = _signed()
    other = NoteSigner(LOG.name, bytes(32)).verifier_key          # right name, other key
    with pytest.raises(VerificationError):
        signed.verify(other)
    renamed = NoteSigner("example.org/other", bytes(range(32))).verifier_key  # right key, other name
    with pytest.raises(VerificationError):
        signed.verify(renamed)
    with pytest.raises(VerificationError):
        signed.verify(renamed, origin=LOG.name)                     # the line is by another key ID
    with pytest.raises(VerificationError):
        signed.verify(LOG.verifier_key, origin="example.org/other")
    with pytest.raises(VerificationError):
        signed.verify(WITNESS.verifier_key)                          # a witness is not the log


def test_cosignature_needs_the_cosigner_key():
    signed = _signed()
    with pytest.raises(VerificationError):
        verify_cosignature(signed, NoteSigner.cosigner(WITNESS.name, bytes(32)).verifier_key)
    with pytest.raises(VerificationError):
        verify_cosignature(signed, LOG.verifier_key)                 # type 0x01 is not a cosigner
    plain = NoteSigner(WITNESS.name, bytes(range(1, 33)))            # same seed, type 0x01
    with pytest.raises(VerificationError):
        verify_cosignature(signed, VerifierKey(plain.name, ALG_COSIGNATURE_V1, bytes(32)))
    cp = signed.checkpoint
    with pytest.raises(MalformedInputError):
        cosign(cp, LOG, 1)
    for bad in (-1, MAX_TIMESTAMP + 1, True):
        with pytest.raises(MalformedInputError):
            cosign(cp, WITNESS, bad)  # type: ignore[arg-type]
    assert verify_cosignature(_with_cosig(cp, cosign(cp, WITNESS, MAX_TIMESTAMP)), WITNESS.verifier_key) \
        == MAX_TIMESTAMP


def _with_cosig(cp: Checkpoint, *sigs: NoteSignature) -> SignedCheckpoint:
    note = sign_note(cp.to_text(), LOG)
    return SignedCheckpoint(cp, SignedNote(note.text, note.signatures + sigs))


def test_bad_cosignature_lines_by_the_known_key_reject():
    cp = _signed().checkpoint
    good = cosign(cp, WITNESS, 1000)
    key = WITNESS.verifier_key

    def variant(payload: bytes) -> NoteSignature:
        return NoteSignature(good.name, good.key_hash, payload)

    ts, sig = good.signature[:8], good.signature[8:]
    bad = [
        variant(struct.pack(">Q", 1001) + sig),                  # other time than signed
        variant(struct.pack(">Q", 1 << 63) + sig),               # beyond 2^63-1
        variant(ts + sig[:-1]),                                  # short
        variant(ts + sig + b"\x00"),                             # long
        variant(sig),                                            # no timestamp
        cosign(Checkpoint(cp.origin, cp.size + 1, cp.root_hash), WITNESS, 1000),  # other checkpoint
    ]
    for line in bad:
        with pytest.raises(VerificationError):
            verify_cosignature(_with_cosig(cp, line), key)
        with pytest.raises(VerificationError):                   # a bad line poisons a good one
            verify_cosignature(_with_cosig(cp, good, line), key)
    # Several valid lines by one cosigner: the earliest time is the attested one.
    assert verify_cosignature(_with_cosig(cp, cosign(cp, WITNESS, 2000), good), key) == 1000
    # with_signature keeps one line per key: the newest cosignature replaces the older.
    assert verify_cosignature(_signed().with_signature(cosign(cp, WITNESS, 5)), key) == 5


def test_a_plain_note_key_is_never_a_cosigner():
    """A type-0x01 key's line shaped like a cosignature (timestamp, then an Ed25519
    signature of the cosigned message) is refused: a log key does not attest times."""
    cp = _signed().checkpoint
    key = LOG.verifier_key
    line = NoteSignature(key.name, key.key_hash,
                         struct.pack(">Q", 1000) + LOG.raw_sign(cosigned_message(cp.to_text(), 1000)))
    with pytest.raises(VerificationError, match="not a cosignature/v1"):
        verify_cosignature(_with_cosig(cp, line), key)


def test_a_validly_signed_timestamp_beyond_2_63_is_refused():
    """tlog-cosignature: the time MUST NOT exceed 2^63 - 1, even when the cosigner signed it
    (cosign refuses to; a raw signer need not)."""
    cp = _signed().checkpoint
    key = WITNESS.verifier_key
    for ts in (MAX_TIMESTAMP + 1, (1 << 64) - 1):
        line = NoteSignature(key.name, key.key_hash,
                             struct.pack(">Q", ts) + WITNESS.raw_sign(cosigned_message(cp.to_text(), ts)))
        with pytest.raises(VerificationError, match="2\\^63"):
            verify_cosignature(_with_cosig(cp, line), key)


def test_a_seed_needs_exactly_one_log_signature_line():
    """log_signature: two lines by the log key (even identical ones, which verify) leave
    the seed's signature ambiguous, so the checkpoint is refused as a seed source."""
    signed = _signed()
    line = signed.note.signatures_by(LOG.verifier_key)[0]
    assert signed.log_signature(LOG.verifier_key) == line.signature
    doubled = SignedCheckpoint(signed.checkpoint,
                               SignedNote(signed.note.text, signed.note.signatures + (line,)))
    assert doubled.verify(LOG.verifier_key) == signed.checkpoint      # a valid note...
    with pytest.raises(VerificationError, match="exactly one"):
        doubled.log_signature(LOG.verifier_key)                        # ...but no seed


def test_cosigned_message_is_the_spec_layout():
    cp = Checkpoint("example.com/behind-the-sofa", 20852163,
                    base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="), ("x",))
    assert cosigned_message(cp.to_text(), 1679315147) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\nx\n")
    line = cosign(cp, WITNESS, 1679315147)
    assert line.signature[:8] == (1679315147).to_bytes(8, "big") and len(line.signature) == 72
    WITNESS.verifier_key.verify_raw(line.signature[8:], cosigned_message(cp.to_text(), 1679315147))


def test_a_log_may_sign_with_a_cosignature_key():
    log = NoteSigner.cosigner("example.org/cosigning-log", bytes(range(2, 34)))
    cp = Checkpoint(log.name, 3, bytes(32))
    # A note needs one line to exist; build it with the cosignature as its only signature.
    signed = SignedCheckpoint(cp, SignedNote(cp.to_text(), (cosign(cp, log, 99),)))
    assert SignedCheckpoint.from_bytes(signed.to_bytes()).verify(log.verifier_key) == cp


def test_truncations_and_bad_encodings():
    data = _signed().to_bytes()
    for cut in range(len(data)):
        try:
            signed = SignedCheckpoint.from_bytes(data[:cut])
        except MalformedInputError:
            continue
        # Cutting after a whole line leaves a shorter but well-formed note: no cosignature.
        with pytest.raises(VerificationError):
            verify_cosignature(signed, WITNESS.verifier_key)
    for bad in (data.replace(b"\n", b"\r\n"), b"\xff" + data, data[:-1] + b"\x00\n"):
        with pytest.raises(MalformedInputError):
            SignedCheckpoint.from_bytes(bad)
    with pytest.raises(MalformedInputError):
        SignedCheckpoint.from_bytes(data, max_bytes=len(data) - 1)


# -- properties ------------------------------------------------------------------------

LINE = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=16)


@settings(max_examples=150, deadline=None)
@given(origin=LINE, size=st.integers(0, MAX_TREE_SIZE), root=st.binary(min_size=32, max_size=32),
       extensions=st.lists(LINE, max_size=3))
def test_checkpoint_text_round_trip(origin, size, root, extensions):
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.from_text(cp.to_text()) == cp


FLIP_SUBJECT = _signed(size=12345, extensions=("ext",)).to_bytes()


def _flip_fails(data: bytes) -> None:
    try:
        signed = SignedCheckpoint.from_bytes(data)
    except MalformedInputError:
        return
    try:
        signed.verify(LOG.verifier_key)
        verify_cosignature(signed, WITNESS.verifier_key)
    except VerificationError:
        return
    raise AssertionError(f"tampered checkpoint still verifies: {data!r}")


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_flipping_any_byte_of_a_cosigned_checkpoint_never_verifies(data):
    pos = data.draw(st.integers(0, len(FLIP_SUBJECT) - 1))
    tampered = bytearray(FLIP_SUBJECT)
    tampered[pos] ^= data.draw(st.integers(1, 255))
    _flip_fails(bytes(tampered))


def test_flipping_each_byte_exhaustively():
    for pos in range(len(FLIP_SUBJECT)):
        for mask in (0x01, 0x04, 0x40, 0x80, 0xFF):
            tampered = bytearray(FLIP_SUBJECT)
            tampered[pos] ^= mask
            _flip_fails(bytes(tampered))
