"""Ed25519 identities and their passphrase-encrypted key files."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import nacl.pwhash
import pytest

import claimkit.identity as identity_module
from claimkit.errors import KeyFileError, MalformedInputError, VerificationError
from claimkit.identity import Identity, PublicIdentity, passphrase_from_env
from claimkit.sealed import seal, unseal
from claimkit.wire import b64decode, b64encode, canonical_json

PASSPHRASE = "correct horse battery staple"
SEED = bytes(range(32))
ARGON = nacl.pwhash.argon2id


@pytest.fixture
def alice() -> Identity:
    return Identity.generate("alice", seed=SEED)


@pytest.fixture
def key_path(tmp_path: Path, alice: Identity) -> Path:
    path = tmp_path / "alice.key"
    alice.save(path, PASSPHRASE, strength="min")
    return path


def corrupted(path: Path) -> str:
    return f"wrong passphrase or corrupted key file: {path}"


def rewrite(path: Path, **changes: object) -> None:
    """Edit a key file's JSON in place, keeping its 0600 mode."""
    body = json.loads(path.read_bytes())
    for name, value in changes.items():
        if name.startswith("kdf_"):
            body["kdf"][name[4:]] = value
        else:
            body[name] = value
    path.write_bytes(canonical_json(body))
    os.chmod(path, 0o600)


def flip_b64(text: str, index: int = 0) -> str:
    raw = bytearray(b64decode(text))
    raw[index] ^= 0x01
    return b64encode(bytes(raw))


# --- public identities ----------------------------------------------------------------

def test_key_id_is_sha256_of_raw_public_key(alice: Identity) -> None:
    import hashlib
    assert alice.public.key_id == hashlib.sha256(alice.public.public_key).hexdigest()
    assert alice.name == alice.public.name == "alice"


def test_seed_is_deterministic_and_matches_rfc8032_derivation(alice: Identity) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    expected = Ed25519PrivateKey.from_private_bytes(SEED).public_key().public_bytes_raw()
    assert alice.public.public_key == expected
    assert Identity.generate("alice", seed=SEED).public == alice.public
    assert Identity.generate("alice").public != alice.public


def test_sign_and_verify(alice: Identity) -> None:
    sig = alice.sign(b"hello")
    assert len(sig) == 64
    assert alice.public.verify(sig, b"hello") is None


@pytest.mark.parametrize("sig, message", [
    (b"\x00" * 64, b"hello"),        # wrong signature
    (b"\x00" * 63, b"hello"),        # wrong length
    ("not bytes", b"hello"),         # wrong type
    (None, b"hello"),
])
def test_verify_raises_never_returns_false(alice: Identity, sig: object, message: bytes) -> None:
    with pytest.raises(VerificationError, match="bad signature for alice"):
        alice.public.verify(sig, message)  # type: ignore[arg-type]


def test_verify_rejects_other_message_and_other_key(alice: Identity) -> None:
    sig = alice.sign(b"hello")
    with pytest.raises(VerificationError):
        alice.public.verify(sig, b"hellO")
    with pytest.raises(VerificationError):
        Identity.generate("bob", seed=b"\x02" * 32).public.verify(sig, b"hello")


@pytest.mark.parametrize("name", ["", "a" * 65, "al ice", "alice/..", "ålice", "a\n"])
def test_names_are_restricted(name: str) -> None:
    with pytest.raises(MalformedInputError):
        Identity.generate(name, seed=SEED)


@pytest.mark.parametrize("seed", [b"\x00" * 31, b"\x00" * 33, "x" * 32])
def test_seed_must_be_32_bytes(seed: object) -> None:
    with pytest.raises(MalformedInputError, match="32 bytes"):
        Identity.generate("alice", seed=seed)  # type: ignore[arg-type]


def test_public_identity_json_round_trip(alice: Identity) -> None:
    pub = alice.public
    assert PublicIdentity.from_json(pub.to_json()) == pub
    assert pub.to_dict() == {"type": "claimkit/identity-public/v1", "name": "alice",
                             "public_key": b64encode(pub.public_key), "key_id": pub.key_id}


@pytest.mark.parametrize("change, message", [
    ({"key_id": "00" * 32}, "key_id: does not match"),
    ({"key_id": "é"}, "key_id: does not match"),
    ({"type": "claimkit/identity/v1"}, "type: expected one of"),
    ({"extra": 1}, "unknown field 'extra'"),
    ({"name": "al ice"}, "public identity.name"),
    ({"public_key": b64encode(b"\x00" * 31)}, "public_key: expected 32 bytes"),
])
def test_public_identity_parsing_is_strict(alice: Identity, change: dict, message: str) -> None:
    with pytest.raises(MalformedInputError, match=message):
        PublicIdentity.from_dict({**alice.public.to_dict(), **change})


def test_public_identity_missing_field(alice: Identity) -> None:
    body = alice.public.to_dict()
    del body["key_id"]
    with pytest.raises(MalformedInputError, match="key_id: missing"):
        PublicIdentity.from_dict(body)


# --- key files ------------------------------------------------------------------------

def test_save_load_round_trip(key_path: Path, alice: Identity) -> None:
    loaded = Identity.load(key_path, PASSPHRASE)
    assert loaded.public == alice.public
    assert loaded.seed == SEED
    loaded.public.verify(alice.sign(b"m"), b"m")
    assert PublicIdentity.from_file(key_path.with_suffix(".pub")) == alice.public


def test_file_modes_and_layout(key_path: Path, alice: Identity) -> None:
    pub = key_path.with_suffix(".pub")
    assert pub.name == "alice.pub"
    assert os.stat(key_path).st_mode & 0o777 == 0o600
    assert os.stat(pub).st_mode & 0o777 == 0o644
    assert sorted(p.name for p in key_path.parent.iterdir()) == ["alice.key", "alice.pub"]
    body = json.loads(key_path.read_bytes())
    assert set(body) == {"type", "name", "public_key", "kdf", "ciphertext"}
    assert body["type"] == "claimkit/identity/v1" and body["name"] == "alice"
    assert b64decode(body["public_key"]) == alice.public.public_key
    assert body["kdf"]["alg"] == "argon2id13"
    assert (body["kdf"]["opslimit"], body["kdf"]["memlimit"]) == (ARGON.OPSLIMIT_MIN, ARGON.MEMLIMIT_MIN)
    assert len(b64decode(body["kdf"]["salt"])) == ARGON.SALTBYTES
    assert SEED.hex() not in key_path.read_text() and b64encode(SEED) not in key_path.read_text()


def test_modes_do_not_depend_on_umask(tmp_path: Path, alice: Identity) -> None:
    old = os.umask(0o000)
    try:
        alice.save(tmp_path / "k.key", PASSPHRASE, strength="min")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "k.key").st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / "k.pub").st_mode & 0o777 == 0o644


def test_default_strength_is_interactive(tmp_path: Path, alice: Identity) -> None:
    path = tmp_path / "default.key"
    alice.save(path, PASSPHRASE)
    kdf = json.loads(path.read_bytes())["kdf"]
    assert (kdf["opslimit"], kdf["memlimit"]) == (ARGON.OPSLIMIT_INTERACTIVE, ARGON.MEMLIMIT_INTERACTIVE)
    assert Identity.load(path, PASSPHRASE).public == alice.public


def test_salt_is_fresh_each_save(tmp_path: Path, alice: Identity) -> None:
    alice.save(tmp_path / "a.key", PASSPHRASE, strength="min")
    alice.save(tmp_path / "b.key", PASSPHRASE, strength="min")
    a, b = (json.loads((tmp_path / n).read_bytes()) for n in ("a.key", "b.key"))
    assert a["kdf"]["salt"] != b["kdf"]["salt"] and a["ciphertext"] != b["ciphertext"]


def test_unknown_strength_and_empty_passphrase_write_nothing(tmp_path: Path, alice: Identity) -> None:
    with pytest.raises(MalformedInputError, match="strength"):
        alice.save(tmp_path / "a.key", PASSPHRASE, strength="weak")
    with pytest.raises(KeyFileError, match="empty passphrase"):
        alice.save(tmp_path / "a.key", "", strength="min")
    assert list(tmp_path.iterdir()) == []


def test_wrong_passphrase(key_path: Path) -> None:
    with pytest.raises(KeyFileError) as e:
        Identity.load(key_path, PASSPHRASE + "!")
    assert str(e.value) == corrupted(key_path)
    assert PASSPHRASE not in str(e.value)


@pytest.mark.parametrize("field", ["ciphertext", "ciphertext_last", "kdf_salt", "kdf_opslimit",
                                   "public_key", "name"])
def test_tampering_is_one_vague_error(key_path: Path, field: str) -> None:
    body = json.loads(key_path.read_bytes())
    other = Identity.generate("mallory", seed=b"\x07" * 32).public
    change = {
        "ciphertext": {"ciphertext": flip_b64(body["ciphertext"])},
        "ciphertext_last": {"ciphertext": flip_b64(body["ciphertext"], -1)},
        "kdf_salt": {"kdf_salt": flip_b64(body["kdf"]["salt"])},
        "kdf_opslimit": {"kdf_opslimit": body["kdf"]["opslimit"] + 1},
        "public_key": {"public_key": b64encode(other.public_key)},
        "name": {"name": "mallory"},
    }[field]
    rewrite(key_path, **change)
    with pytest.raises(KeyFileError) as e:
        Identity.load(key_path, PASSPHRASE)
    assert str(e.value) == corrupted(key_path)


def test_swapped_ciphertext_from_another_key_is_detected(tmp_path: Path, key_path: Path) -> None:
    """Another key sealed under the same passphrase does not pass as this one."""
    Identity.generate("alice", seed=b"\x09" * 32).save(tmp_path / "other.key", PASSPHRASE, strength="min")
    other = json.loads((tmp_path / "other.key").read_bytes())
    rewrite(key_path, kdf_salt=other["kdf"]["salt"], ciphertext=other["ciphertext"])
    with pytest.raises(KeyFileError) as e:
        Identity.load(key_path, PASSPHRASE)
    assert str(e.value) == corrupted(key_path)


@pytest.mark.parametrize("mode, word", [(0o644, "readable"), (0o640, "readable"), (0o604, "readable"),
                                        (0o620, "writable"), (0o602, "writable"),
                                        (0o610, "accessible")])
@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_refuses_key_that_others_can_access(key_path: Path, mode: int, word: str) -> None:
    os.chmod(key_path, mode)
    with pytest.raises(KeyFileError) as e:
        Identity.load(key_path, PASSPHRASE)
    assert str(e.value) == f"{key_path} is {word} by others (mode {mode:04o}); chmod 600 {key_path}"


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_owner_only_modes_are_fine(key_path: Path) -> None:
    os.chmod(key_path, 0o400)
    assert Identity.load(key_path, PASSPHRASE).name == "alice"


def test_refuses_overwrite(key_path: Path, alice: Identity) -> None:
    before = key_path.read_bytes()
    with pytest.raises(KeyFileError, match="exists; refusing to overwrite"):
        alice.save(key_path, PASSPHRASE, strength="min")
    assert key_path.read_bytes() == before


def test_refuses_to_overwrite_a_pub_file(tmp_path: Path, alice: Identity) -> None:
    (tmp_path / "new.pub").write_text("someone else's public key")
    with pytest.raises(KeyFileError, match="new.pub exists"):
        alice.save(tmp_path / "new.key", PASSPHRASE, strength="min")
    assert not (tmp_path / "new.key").exists()
    assert (tmp_path / "new.pub").read_text() == "someone else's public key"


def test_overwrite_when_asked(key_path: Path) -> None:
    bob = Identity.generate("bob", seed=b"\x02" * 32)
    bob.save(key_path, "other", strength="min", overwrite=True)
    assert Identity.load(key_path, "other").public == bob.public
    assert PublicIdentity.from_file(key_path.with_suffix(".pub")) == bob.public
    assert os.stat(key_path).st_mode & 0o777 == 0o600


def test_refuses_key_named_pub(tmp_path: Path, alice: Identity) -> None:
    with pytest.raises(KeyFileError, match="must not be named .pub"):
        alice.save(tmp_path / "alice.pub", PASSPHRASE, strength="min")
    assert list(tmp_path.iterdir()) == []


def test_no_hard_links_falls_back_to_checked_rename(tmp_path: Path, alice: Identity,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(identity_module.os, "link", no_link)
    alice.save(tmp_path / "fat.key", PASSPHRASE, strength="min")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fat.key", "fat.pub"]
    assert Identity.load(tmp_path / "fat.key", PASSPHRASE).public == alice.public


def test_key_file_created_meanwhile_survives(tmp_path: Path, alice: Identity,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The existence check and the write are one atomic step (link refuses to replace)."""
    path = tmp_path / "race.key"
    real_link = os.link

    def racing_link(src: object, dst: object) -> None:
        if Path(str(dst)) == path:
            path.write_text("written by someone else")
        real_link(src, dst)

    monkeypatch.setattr(identity_module.os, "link", racing_link)
    with pytest.raises(KeyFileError, match="exists; refusing to overwrite"):
        alice.save(path, PASSPHRASE, strength="min")
    assert path.read_text() == "written by someone else"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race.key"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no such key file"):
        Identity.load(tmp_path / "nope.key", PASSPHRASE)


def test_directory_is_not_a_key(tmp_path: Path) -> None:
    (tmp_path / "d.key").mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match="not a regular file|cannot open"):
        Identity.load(tmp_path / "d.key", PASSPHRASE)


def private_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    os.chmod(path, 0o600)
    return path


def test_not_json(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="not a usable claimkit key file.*not valid JSON"):
        Identity.load(private_file(tmp_path / "x.key", b"-----BEGIN OPENSSH PRIVATE KEY-----"), PASSPHRASE)


def test_too_large(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="larger than"):
        Identity.load(private_file(tmp_path / "x.key", b" " * (1 << 20)), PASSPHRASE)


def test_wrong_type(key_path: Path) -> None:
    rewrite(key_path, type="claimkit/marking-key/v1")
    with pytest.raises(KeyFileError, match="not a claimkit identity key"):
        Identity.load(key_path, PASSPHRASE)


def test_public_file_given_as_key(key_path: Path) -> None:
    pub = key_path.with_suffix(".pub")
    # as written (0644): it once said "chmod 600", and only then that it is public
    with pytest.raises(KeyFileError, match="is a public identity; load the private key file"):
        Identity.load(pub, PASSPHRASE)
    os.chmod(pub, 0o600)
    with pytest.raises(KeyFileError, match="is a public identity; load the private key file"):
        Identity.load(pub, PASSPHRASE)
    model = key_path.with_name("m.safetensors")                # no key at all, mode 0644
    model.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    os.chmod(model, 0o644)
    with pytest.raises(KeyFileError, match="not a claimkit identity key"):
        Identity.load(model, PASSPHRASE)


@pytest.mark.parametrize("change, message", [
    ({"extra": 1}, "unknown field 'extra'"),
    ({"ciphertext": "!!"}, "ciphertext: not valid base64"),
    ({"kdf_alg": "scrypt"}, "kdf.alg"),
    ({"kdf_salt": b64encode(b"\x00" * 8)}, "salt: expected 16 bytes"),
])
def test_malformed_fields_are_key_file_errors(key_path: Path, change: dict, message: str) -> None:
    rewrite(key_path, **change)
    with pytest.raises(KeyFileError, match=message):
        Identity.load(key_path, PASSPHRASE)


@pytest.mark.parametrize("change", [
    {"kdf_memlimit": 1 << 40},
    {"kdf_memlimit": (4 << 30) + 1},
    {"kdf_opslimit": 1 << 32},
    {"kdf_opslimit": 65},
    {"kdf_opslimit": 0},
    {"kdf_memlimit": 1024},
    {"kdf_opslimit": "1"},
    {"kdf_memlimit": 2.5},
    {"kdf_memlimit": 8193},         # libsodium rounds down to whole KiB: this one would open
    {"kdf_memlimit": 9000},
])
def test_hostile_kdf_limits_are_refused_before_the_kdf(key_path: Path, change: dict,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import claimkit.sealed as sealed

    def no_kdf(*args: object) -> bytes:
        raise AssertionError("the KDF ran on limits the file should not have had")

    rewrite(key_path, **change)
    monkeypatch.setattr(sealed, "_derive", no_kdf)
    with pytest.raises(KeyFileError, match="kdf"):
        Identity.load(key_path, PASSPHRASE)


def test_repr_and_str_hide_the_secret(alice: Identity) -> None:
    for text in (repr(alice), str(alice), f"{alice}"):
        assert SEED.hex() not in text and repr(SEED) not in text and b64encode(SEED) not in text
        assert "alice" in text and alice.public.key_id[:16] in text
    assert not hasattr(alice, "__dict__")


def test_passphrase_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAIMKIT_PASSPHRASE", raising=False)
    assert passphrase_from_env() is None
    monkeypatch.setenv("CLAIMKIT_PASSPHRASE", "")
    assert passphrase_from_env() is None
    monkeypatch.setenv("CLAIMKIT_PASSPHRASE", "s3cret pass")
    assert passphrase_from_env() == "s3cret pass"
    monkeypatch.setenv("OTHER_PASS", "x")
    assert passphrase_from_env("OTHER_PASS") == "x"


def test_unicode_passphrase_round_trip(tmp_path: Path, alice: Identity) -> None:
    alice.save(tmp_path / "u.key", "pässwörd ✓", strength="min")
    assert Identity.load(tmp_path / "u.key", "pässwörd ✓").public == alice.public


def test_write_error_names_the_key_file_not_its_temporary(tmp_path: Path, alice: Identity) -> None:
    path = tmp_path / "nodir" / "x.key"
    with pytest.raises(KeyFileError) as e:
        alice.save(path, PASSPHRASE, strength="min")
    assert str(e.value) == f"{path}: cannot write (No such file or directory)"


@pytest.mark.parametrize("passphrase", [PASSPHRASE.encode(), None, 5])
def test_passphrase_must_be_text(tmp_path: Path, key_path: Path, passphrase: object) -> None:
    """bytes would be a second spelling of a passphrase that skips NFC normalisation."""
    name = type(passphrase).__name__
    with pytest.raises(KeyFileError, match=f"passphrase must be text \\(str\\), not {name}$"):
        seal(b"x", passphrase, strength="min")  # type: ignore[arg-type]
    with pytest.raises(KeyFileError, match=f"not {name}$"):
        unseal(seal(b"x", PASSPHRASE, strength="min"), passphrase, what="box")  # type: ignore[arg-type]
    with pytest.raises(KeyFileError, match=f"not {name}$"):
        Identity.load(key_path, passphrase)  # type: ignore[arg-type]


def test_key_file_errors_are_malformed_input(key_path: Path) -> None:
    """A caller catching MalformedInputError must not miss a tampered or misread key."""
    with pytest.raises(MalformedInputError) as e:
        Identity.load(key_path, PASSPHRASE + "!")
    assert str(e.value) == corrupted(key_path)  # not re-wrapped as "not a usable key file"


# --- mutation testing, round 2 ---------------------------------------------------------

def test_a_name_cut_to_a_prefix_of_the_sealed_name_is_detected(key_path: Path) -> None:
    """The stated name must equal the sealed one, not merely begin it."""
    rewrite(key_path, name="alic")
    with pytest.raises(KeyFileError) as e:
        Identity.load(key_path, PASSPHRASE)
    assert str(e.value) == corrupted(key_path)


def test_a_sealed_seed_shorter_than_32_bytes_is_corrupted(key_path: Path, alice: Identity) -> None:
    """Someone who knows the passphrase seals a short seed: one vague KeyFileError, no crash."""
    box = seal(b"\x01" * 20, PASSPHRASE, strength="min")
    rewrite(key_path, kdf=box["kdf"], ciphertext=box["ciphertext"])
    with pytest.raises(KeyFileError) as e:
        Identity.load(key_path, PASSPHRASE)
    assert str(e.value) == corrupted(key_path)


def test_an_oversized_ciphertext_is_refused_before_decryption(key_path: Path) -> None:
    """A seed and a name fit in far less than 1 KiB; a larger ciphertext is no identity key."""
    box = seal(b"\x00" * 2000, PASSPHRASE, strength="min")
    rewrite(key_path, kdf=box["kdf"], ciphertext=box["ciphertext"])
    with pytest.raises(KeyFileError, match="not a usable claimkit key file: .*ciphertext"):
        Identity.load(key_path, PASSPHRASE)


@pytest.mark.parametrize("public_key", [b"\x00" * 31, b"\x00" * 33, bytearray(32), "a" * 32])
def test_public_identity_needs_32_bytes_of_key(public_key: object) -> None:
    with pytest.raises(MalformedInputError, match="expected 32 bytes"):
        PublicIdentity("alice", public_key)  # type: ignore[arg-type]


def test_no_hard_links_still_never_replaces_a_file_created_meanwhile(
        tmp_path: Path, alice: Identity, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "fat.key"

    def no_link(src: object, dst: object) -> None:
        if Path(str(dst)) == path:
            path.write_text("written by someone else")
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(identity_module.os, "link", no_link)
    with pytest.raises(KeyFileError, match="exists; refusing to overwrite"):
        alice.save(path, PASSPHRASE, strength="min")
    assert path.read_text() == "written by someone else"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fat.key"]


def test_saving_a_key_syncs_its_directory(tmp_path: Path, alice: Identity,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The new names are durable: the directory is fsynced once both are linked in."""
    seen: list[bool] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.path.samestat(os.fstat(fd), os.stat(tmp_path)):
            seen.append((tmp_path / "d.pub").exists())
        real_fsync(fd)

    monkeypatch.setattr(identity_module.os, "fsync", fsync)
    alice.save(tmp_path / "d.key", PASSPHRASE, strength="min")
    assert seen and seen[-1]        # a directory sync after the .pub was linked


def test_unknown_kdf_fields_are_refused(key_path: Path) -> None:
    rewrite(key_path, kdf_extra=1)
    with pytest.raises(KeyFileError, match="unknown field 'extra'"):
        Identity.load(key_path, PASSPHRASE)


def test_passphrase_is_nfc_normalised_before_derivation() -> None:
    """A box sealed under the NFC bytes opens with the decomposed spelling (and not NFD)."""
    import nacl.secret
    import nacl.utils
    composed = "p\u00e4ss"                          # ä as one code point (NFC)
    decomposed = "pa\u0308ss"                        # a + combining diaeresis (NFD)
    salt = nacl.utils.random(ARGON.SALTBYTES)
    key = ARGON.kdf(32, composed.encode("utf-8"), salt,
                    opslimit=ARGON.OPSLIMIT_MIN, memlimit=ARGON.MEMLIMIT_MIN)
    box = {"kdf": {"alg": "argon2id13", "opslimit": ARGON.OPSLIMIT_MIN,
                   "memlimit": ARGON.MEMLIMIT_MIN, "salt": b64encode(salt)},
           "ciphertext": b64encode(bytes(nacl.secret.SecretBox(key).encrypt(b"secret")))}
    assert unseal(box, decomposed, what="box") == b"secret"
    assert unseal(box, composed, what="box") == b"secret"


def test_unseal_refuses_unknown_top_level_fields() -> None:
    box = seal(b"x", PASSPHRASE, strength="min")
    with pytest.raises(MalformedInputError, match="unknown field 'extra'"):
        unseal({**box, "extra": 1}, PASSPHRASE, what="box")


def test_strength_of_unknown_limits_is_the_default_not_the_weakest() -> None:
    """A key re-saved is sealed no weaker: limits matching no name give the default."""
    from claimkit.sealed import STRENGTHS, strength_of
    box = seal(b"x", PASSPHRASE, strength="min")
    assert strength_of(box) == "min"
    for name, (ops, mem) in STRENGTHS.items():
        assert strength_of({"kdf": {"opslimit": ops, "memlimit": mem}}) == name
    odd = {"kdf": {"opslimit": ARGON.OPSLIMIT_INTERACTIVE, "memlimit": ARGON.MEMLIMIT_MODERATE}}
    assert strength_of(odd) == "interactive"
    assert strength_of(odd, default="sensitive") == "sensitive"
    assert strength_of("not a box") == "interactive"
