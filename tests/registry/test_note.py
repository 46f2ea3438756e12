"""C2SP signed notes: Go's and the spec's known answers, strict parsing, tampering."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claimkit.errors import MalformedInputError, VerificationError
from claimkit.registry.note import (ALG_COSIGNATURE_V1, ALG_ED25519, MAX_SIGNATURES, NoteSignature,
                                    NoteSigner, SignedNote, VerifierKey, check_key_name, key_hash,
                                    sign_note, verify_note)

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "protocol_spec" / "vectors" / "c2sp"
                      / "signed-note.json").read_text(encoding="utf-8"))

# Known answers from golang.org/x/mod/sumdb/note (note_test.go, TestSign / TestOpen /
# TestVerifierList at fe2ec04f7c3c3aa6fad97631aafcff6e49e2d1db); also in signed-note.json.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = ("If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n")
PETER_SIG = ("— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngot"
             "pRZb6KE6RyyBwJnAM=\n")
ENOCH_SIG = ("— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLo"
             "x33WWd1RvMc+QQ=\n")
PETER_NOTE = (TEXT + "\n" + PETER_SIG).encode()
BOTH_NOTE = (TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()

# https://c2sp.org/signed-note, "Verifier keys / Example" (C2SP/C2SP signed-note.md at 5ba5ee8).
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = ("This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONnc"
             "AlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n").encode()

PETER = VerifierKey.from_vkey(PETER_VKEY)
ENOCH = VerifierKey.from_vkey(ENOCH_VKEY)


def test_inline_vectors_are_the_json_vectors():
    verify = {v["name"]: v for v in VECTORS["verify"]}
    assert verify["go-peterneumann"]["skey"] == PETER_SKEY
    assert verify["go-peterneumann"]["note"].encode() == PETER_NOTE
    assert verify["go-peter-and-enoch"]["vkeys"] == [PETER_VKEY, ENOCH_VKEY]
    assert verify["go-peter-and-enoch"]["note"].encode() == BOTH_NOTE
    assert verify["c2sp-signed-note-vkey-example"]["vkeys"] == [SPEC_VKEY]
    assert verify["c2sp-signed-note-vkey-example"]["note"].encode() == SPEC_NOTE


# -- known answers ---------------------------------------------------------------------

def test_go_signer_reproduces_go_signed_note_byte_for_byte():
    signer = NoteSigner.from_skey(PETER_SKEY)
    assert signer.vkey == PETER_VKEY
    assert signer.verifier_key.key_hash.hex() == "c74f20a3"
    assert sign_note(TEXT, signer).to_bytes() == PETER_NOTE


@pytest.mark.parametrize("vector", VECTORS["verify"], ids=lambda v: v["name"])
def test_published_notes_verify_and_round_trip(vector):
    data = vector["note"].encode("utf-8")
    note = SignedNote.from_bytes(data)
    assert note.text == vector["text"]
    assert note.to_bytes() == data
    for vkey in vector["vkeys"]:
        key = VerifierKey.from_vkey(vkey)
        assert key.to_vkey() == vkey
        sig = verify_note(note, key)
        assert sig.name == key.name and sig.key_hash == key.key_hash


@pytest.mark.parametrize("vector", VECTORS["parse_only"], ids=lambda v: v["name"])
def test_spec_example_framing(vector):
    data = vector["note"].encode("utf-8")
    note = SignedNote.from_bytes(data)
    assert note.text == vector["text"]  # the text's own empty line stays in the text
    assert note.to_bytes() == data
    assert [(s.name, s.key_hash.hex(), len(s.signature)) for s in note.signatures] == [
        (s["name"], s["key_id"], s["signature_len"]) for s in vector["signatures"]]


@pytest.mark.parametrize("vector", VECTORS["bad_notes"], ids=lambda v: v["source"].split("(")[-1])
def test_go_malformed_notes_are_refused(vector):
    data = bytes.fromhex(vector["note_hex"]) if "note_hex" in vector else vector["note"].encode()
    with pytest.raises(MalformedInputError):
        SignedNote.from_bytes(data)


@pytest.mark.parametrize("vector", VECTORS["bad_vkeys"], ids=lambda v: v["vkey"][:24])
def test_go_malformed_vkeys_are_refused(vector):
    with pytest.raises(MalformedInputError):
        VerifierKey.from_vkey(vector["vkey"])


@pytest.mark.parametrize("vector", VECTORS["invalid_signature"], ids=lambda v: "abcd")
def test_go_invalid_signature_is_rejected(vector):
    note = SignedNote.from_bytes(vector["note"].encode())
    with pytest.raises(VerificationError):
        verify_note(note, VerifierKey.from_vkey(vector["vkey"]))


def test_every_mangling_of_a_vkey_is_refused():
    """Go's TestNewVerifier: every proper substring and every byte incremented."""
    b = PETER_VKEY.encode()
    for i in range(len(b) + 1):
        for j in range(i + 1, len(b) + 1):
            if (i, j) != (0, len(b)):
                with pytest.raises(MalformedInputError):
                    VerifierKey.from_vkey(b[i:j].decode())
    for i in range(len(b)):
        mangled = b[:i] + bytes([b[i] + 1]) + b[i + 1:]
        with pytest.raises(MalformedInputError):
            VerifierKey.from_vkey(mangled.decode())


def test_every_mangling_of_a_signer_key_is_refused():
    """Go's TestNewSigner, for NoteSigner.from_skey."""
    b = PETER_SKEY.encode()
    for i in range(len(b) + 1):
        for j in range(i + 1, len(b) + 1):
            if (i, j) != (0, len(b)):
                with pytest.raises(MalformedInputError):
                    NoteSigner.from_skey(b[i:j].decode())
    for i in range(len(b)):
        with pytest.raises(MalformedInputError):
            NoteSigner.from_skey((b[:i] + bytes([b[i] + 1]) + b[i + 1:]).decode())


# -- keys ------------------------------------------------------------------------------

def test_vkey_base64_may_contain_plus():
    # sum.golang.org's key (golang/go src/cmd/go/internal/modfetch/key.go) has '+' in its base64.
    vkey = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
    key = VerifierKey.from_vkey(vkey)
    assert (key.name, key.alg, key.to_vkey()) == ("sum.golang.org", ALG_ED25519, vkey)


def test_vkey_key_id_must_be_lowercase_hex_and_match():
    with pytest.raises(MalformedInputError):
        VerifierKey.from_vkey(PETER_VKEY.replace("c74f20a3", "C74F20A3"))
    with pytest.raises(MalformedInputError):
        VerifierKey.from_vkey(PETER_VKEY.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(MalformedInputError):
        VerifierKey.from_vkey(PETER_VKEY + "\n")


def test_key_hash_formula_and_types():
    pub = PETER.public_key
    assert key_hash("PeterNeumann", 1, pub).hex() == "c74f20a3"
    # The same key as a cosigner has another key ID (type byte 0x04 in the hash).
    cosigner = VerifierKey("PeterNeumann", ALG_COSIGNATURE_V1, pub)
    assert cosigner.key_hash != PETER.key_hash
    assert VerifierKey.from_vkey(cosigner.to_vkey()) == cosigner
    with pytest.raises(MalformedInputError):
        VerifierKey("PeterNeumann", 0x02, pub)
    with pytest.raises(MalformedInputError):
        VerifierKey("PeterNeumann", ALG_ED25519, pub[:31])


def test_cosigner_variant_of_a_signer():
    seed = bytes(range(32))
    log = NoteSigner("example.org/log", seed)
    cos = NoteSigner.cosigner("example.org/log", nacl.signing.SigningKey(seed))
    assert log.verifier_key.public_key == cos.verifier_key.public_key
    assert (log.alg, cos.alg) == (ALG_ED25519, ALG_COSIGNATURE_V1)
    assert log.verifier_key.key_hash != cos.verifier_key.key_hash
    with pytest.raises(MalformedInputError):
        sign_note("x\n", cos)
    with pytest.raises(VerificationError):
        verify_note(sign_note("x\n", log), cos.verifier_key)



def test_a_cosignature_key_never_verifies_a_note():
    """Type separation: a line under a type-0x04 key's ID holding a plain Ed25519
    signature of the note text is not a note signature by that key (its checkpoints go
    through verify_cosignature, which signs another message)."""
    cos = NoteSigner.cosigner("example.org/witness", bytes(range(32)))
    key = cos.verifier_key
    line = NoteSignature(key.name, key.key_hash, cos.raw_sign(b"x\n"))
    with pytest.raises(VerificationError, match="cosignature/v1 key"):
        verify_note(SignedNote("x\n", (line,)), key)

@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\u00a0b", "a\u2003b", "a\u3000b", "a\u0085b",
                                  "a\u2028b", "tab\there", "a\nb", "a\x01b", "a\ud800b"])
def test_bad_key_names(name):
    with pytest.raises(MalformedInputError):
        check_key_name(name)
    with pytest.raises(MalformedInputError):
        NoteSigner(name, bytes(32))


def test_unicode_names_without_spaces_are_fine():
    signer = NoteSigner("пример.рф/журнал", bytes(32))
    note = SignedNote.from_bytes(sign_note("ж\n", signer).to_bytes())
    verify_note(note, VerifierKey.from_vkey(signer.vkey))


# -- verification semantics ------------------------------------------------------------

def test_unknown_signatures_are_ignored():
    note = SignedNote.from_bytes(BOTH_NOTE)
    verify_note(note, PETER)
    verify_note(note, ENOCH)
    assert note.signatures_by(PETER) == (note.signatures[0],)


def test_wrong_key_is_rejected():
    other = NoteSigner("PeterNeumann", bytes(32)).verifier_key  # same name, other key
    with pytest.raises(VerificationError):
        verify_note(SignedNote.from_bytes(PETER_NOTE), other)
    with pytest.raises(VerificationError):
        verify_note(SignedNote.from_bytes(SPEC_NOTE), PETER)


def test_same_name_or_same_key_id_alone_is_an_unknown_key():
    note = SignedNote.from_bytes(PETER_NOTE)
    real = note.signatures[0]
    renamed = NoteSignature("PeterNeumann2", real.key_hash, real.signature)
    rehashed = NoteSignature("PeterNeumann", b"\x00\x00\x00\x00", bytes(64))
    tampered = SignedNote(TEXT, (renamed, rehashed))
    with pytest.raises(VerificationError, match="no signature"):
        verify_note(tampered, PETER)
    # ...and they do not disturb a valid signature next to them.
    verify_note(SignedNote(TEXT, (renamed, real, rehashed)), PETER)


def test_key_id_collision_fails_verification_and_poisons_the_note():
    """A key whose name and key ID collide with the trusted key (an attacker can grind
    4 bytes) is treated as the trusted key: its signature fails, and the spec says a
    failing signature from a known key rejects the whole note, valid line or not."""
    forger = nacl.signing.SigningKey(bytes([7]) * 32)
    forged = NoteSignature("PeterNeumann", PETER.key_hash, forger.sign(TEXT.encode()).signature)
    real = SignedNote.from_bytes(PETER_NOTE).signatures[0]
    for sigs in [(forged,), (real, forged), (forged, real)]:
        with pytest.raises(VerificationError):
            verify_note(SignedNote(TEXT, sigs), PETER)
    assert verify_note(SignedNote(TEXT, (real, real)), PETER) == real  # duplicates are fine


def test_with_signature_replaces_the_same_keys_line():
    note = SignedNote.from_bytes(BOTH_NOTE)
    real = note.signatures[0]
    junk = NoteSignature(real.name, real.key_hash, bytes(64))
    replaced = note.with_signature(junk)
    assert replaced.signatures == (note.signatures[1], junk)
    assert replaced.with_signature(real).signatures == (note.signatures[1], real)


# -- strict parsing --------------------------------------------------------------------

def test_every_truncation_is_refused():
    for cut in range(len(PETER_NOTE)):
        with pytest.raises(MalformedInputError):
            SignedNote.from_bytes(PETER_NOTE[:cut])


@pytest.mark.parametrize("data", [
    PETER_NOTE.replace(b"\n", b"\r\n"),                       # CRLF line endings
    PETER_NOTE.replace(b"\n\n", b"\n\r\n"),
    PETER_NOTE + b"\n",                                        # trailing blank line
    PETER_NOTE[:-1] + b" \n",                                   # trailing space after base64
    PETER_NOTE.replace("—".encode(), b"-"),                     # hyphen for em dash
    PETER_NOTE.replace("— ".encode(), "—\u00a0".encode()),      # NBSP after em dash
    PETER_NOTE.replace(b"PeterNeumann ", b"PeterNeumann  "),    # two spaces
    PETER_NOTE.replace(b"AM=\n", b"AN=\n"),                     # non-canonical base64 (Go would accept)
    PETER_NOTE.replace(b"x08go/", b"x08go\n"),
    PETER_NOTE.replace(b"If", b"\xc0\xaf"),                     # overlong UTF-8
    PETER_NOTE.replace(b"If", b"\xed\xa0\x80"),                 # UTF-8-encoded surrogate
    PETER_NOTE.replace(b"If", b"\x7f\x00"),                     # NUL
    "\n".encode() + b"\n" + b"\xe2\x80\x94 a AAAAAA==\n",        # 4-byte payload: no signature byte
    b"",
])
def test_malformed_notes(data):
    with pytest.raises(MalformedInputError):
        SignedNote.from_bytes(data)


def test_text_rules_follow_the_spec():
    # Texts may hold empty lines, start with a blank line or be a lone newline; DEL is allowed.
    signer = NoteSigner("n", bytes(32))
    for text in ["\n", "\n\nx\n\n", "a\n\n\n", "tab-free \x7f text\n", "— n AAAA\n"]:
        data = sign_note(text, signer).to_bytes()
        note = SignedNote.from_bytes(data)
        assert note.text == text and note.to_bytes() == data
        verify_note(note, signer.verifier_key)
    for text in ["", "no newline", "a\r\n", "a\tb\n", "\ud800\n"]:
        with pytest.raises(MalformedInputError):
            sign_note(text, signer)


def test_signature_count_limit():
    many = TEXT + "\n" + PETER_SIG * MAX_SIGNATURES
    assert len(SignedNote.from_bytes(many.encode()).signatures) == MAX_SIGNATURES
    with pytest.raises(MalformedInputError):
        SignedNote.from_bytes((many + PETER_SIG).encode())
    real = SignedNote.from_bytes(PETER_NOTE).signatures[0]
    with pytest.raises(MalformedInputError):
        SignedNote(TEXT, (real,) * (MAX_SIGNATURES + 1))
    with pytest.raises(MalformedInputError):
        SignedNote(TEXT, ())


def test_size_limit():
    with pytest.raises(MalformedInputError):
        SignedNote.from_bytes(PETER_NOTE, max_bytes=len(PETER_NOTE) - 1)
    assert SignedNote.from_bytes(PETER_NOTE, max_bytes=len(PETER_NOTE)).text == TEXT
    with pytest.raises(MalformedInputError):
        SignedNote.from_bytes(PETER_NOTE.decode())  # type: ignore[arg-type]


def test_unknown_signature_types_are_kept_opaque():
    # A 2,420-byte ML-DSA-44-sized cosignature line by some other witness parses and round-trips.
    line = NoteSignature("witness.example/pq", b"\x01\x02\x03\x04", bytes(8 + 2420))
    data = PETER_NOTE + line.to_line().encode()
    note = SignedNote.from_bytes(data)
    assert note.to_bytes() == data and note.signatures[1] == line
    verify_note(note, PETER)
    assert NoteSignature.from_line(line.to_line()) == line


# -- properties ------------------------------------------------------------------------

TEXT_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters=[chr(c) for c in range(0x20)])
NAME_CHARS = st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"),
                           blacklist_characters=["+", "\x85", "\u1680"])


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.text(TEXT_CHARS, max_size=20), min_size=1, max_size=6),
       name=st.text(NAME_CHARS, min_size=1, max_size=12), seed=st.binary(min_size=32, max_size=32))
def test_sign_parse_round_trip(lines, name, seed):
    signer = NoteSigner(name, seed)
    text = "\n".join(lines) + "\n"
    data = sign_note(text, signer).to_bytes()
    note = SignedNote.from_bytes(data)
    assert note.text == text and note.to_bytes() == data
    verify_note(note, VerifierKey.from_vkey(signer.vkey))


def _flip_fails(data: bytes, keys) -> None:
    try:
        note = SignedNote.from_bytes(data)
    except MalformedInputError:
        return
    for key in keys:
        try:
            verify_note(note, key)
        except VerificationError:
            return
    raise AssertionError(f"tampered note still verifies: {data!r}")


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_flipping_any_byte_never_verifies(data):
    pos = data.draw(st.integers(0, len(BOTH_NOTE) - 1))
    mask = data.draw(st.integers(1, 255))
    tampered = bytearray(BOTH_NOTE)
    tampered[pos] ^= mask
    _flip_fails(bytes(tampered), (PETER, ENOCH))


def test_flipping_each_byte_exhaustively():
    for pos in range(len(BOTH_NOTE)):
        for mask in (0x01, 0x02, 0x20, 0x80, 0xFF):
            tampered = bytearray(BOTH_NOTE)
            tampered[pos] ^= mask
            _flip_fails(bytes(tampered), (PETER, ENOCH))


def test_base64_helper_agrees_with_go_layout():
    raw = base64.b64decode(PETER_SIG.split()[2])
    assert raw[:4] == PETER.key_hash and len(raw) == 4 + 64


def test_vkey_files_are_small_regular_files(tmp_path):
    """`claimkit verify --registry-key /dev/zero` (or a FIFO) must not exhaust memory or hang."""
    import os

    from claimkit.errors import MalformedInputError
    from claimkit.registry.receipt import load_vkey
    fifo = tmp_path / "fifo.vkey"
    os.mkfifo(fifo)
    big = tmp_path / "big.vkey"
    big.write_bytes(b"a" * 5000)
    for path, message in ((fifo, "not a regular file"), (Path("/dev/zero"), "not a regular file"),
                          (big, "larger than 4096 bytes"), (tmp_path / "none", "cannot read")):
        with pytest.raises(MalformedInputError, match=message):
            load_vkey(path)
