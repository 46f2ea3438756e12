"""Marking keys on disk: sealed, owner-only, never overwritten, never printed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import claimkit.identity as identity_module
import claimkit.protocol.keys as keys_module
from claimkit.errors import EXIT_MALFORMED, KeyFileError, MalformedInputError
from claimkit.protocol.keys import MK_FILE, VK_FILE, MarkingKey
from claimkit.wire import b64encode

PASSPHRASE = "correct horse battery staple"
NONCE = bytes(range(32))
SECRET = "the-owners-trigger-seed"
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def make_key(label: int = 1) -> MarkingKey:
    return MarkingKey.create("trigger-set", {"classes": 10},
                             [{"image": "c2VjcmV0LWltYWdl", "label": label}, {"image": "", "label": 2}],
                             rng=lambda k: NONCE, secret={"seed": SECRET})


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    return make_key().save(tmp_path / "keys", PASSPHRASE, strength="min")


def test_round_trip_and_modes(keydir: Path) -> None:
    mk = MarkingKey.load(keydir, PASSPHRASE)
    assert mk.items.values == make_key().items.values and mk.secret == {"seed": SECRET}
    if os.name == "posix":
        assert os.stat(keydir / MK_FILE).st_mode & 0o777 == 0o600
        assert os.stat(keydir / VK_FILE).st_mode & 0o777 == 0o644


@posix_only
@pytest.mark.parametrize("mode, word", [(0o644, "readable"), (0o640, "readable"),
                                        (0o602, "writable")])
def test_refuses_marking_key_that_others_can_access(keydir: Path, mode: int, word: str) -> None:
    path = keydir / MK_FILE
    os.chmod(path, mode)
    with pytest.raises(KeyFileError) as e:
        MarkingKey.load(keydir, PASSPHRASE)
    assert str(e.value) == f"{path} is {word} by others (mode {mode:04o}); chmod 600 {path}"


def test_refuses_special_files_and_oversized_keys(tmp_path: Path, keydir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    if hasattr(os, "mkfifo"):  # a FIFO would hang a blocking open
        (fifo_dir := tmp_path / "fifo-keys").mkdir()
        os.mkfifo(fifo_dir / MK_FILE, 0o600)
        with pytest.raises(KeyFileError, match="not a regular file"):
            MarkingKey.load(fifo_dir, PASSPHRASE)
    size = (keydir / MK_FILE).stat().st_size
    monkeypatch.setattr(keys_module, "MAX_MARKING_KEY_FILE_BYTES", size - 1)
    with pytest.raises(KeyFileError, match=f"larger than {size - 1} bytes"):
        MarkingKey.load(keydir, PASSPHRASE)


def test_bad_key_files_are_malformed_input(keydir: Path) -> None:
    """Library callers catching MalformedInputError also catch unusable key files."""
    with pytest.raises(MalformedInputError) as e:
        MarkingKey.load(keydir, PASSPHRASE + "!")
    assert isinstance(e.value, KeyFileError) and e.value.exit_code == EXIT_MALFORMED
    path = keydir / MK_FILE
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(MalformedInputError, match="not valid JSON"):
        MarkingKey.load(keydir, PASSPHRASE)


def test_an_edited_verification_key_beside_the_marking_key_is_a_key_file_error(
        keydir: Path) -> None:
    """Tampered key files are malformed input (exit 2), whether cut short or edited."""
    path = keydir / VK_FILE
    body = json.loads(path.read_bytes())
    body["params"]["edited"] = 1
    path.write_text(json.dumps(body))
    with pytest.raises(KeyFileError, match="does not match the marking key beside it"):
        MarkingKey.load(keydir, PASSPHRASE)


def test_refuses_to_overwrite_either_file(keydir: Path) -> None:
    before = {name: (keydir / name).read_bytes() for name in (MK_FILE, VK_FILE)}
    with pytest.raises(KeyFileError, match=f"{MK_FILE} exists; refusing to overwrite"):
        make_key(5).save(keydir, PASSPHRASE, strength="min")
    (keydir / MK_FILE).unlink()
    with pytest.raises(KeyFileError, match=f"{VK_FILE} exists; refusing to overwrite"):
        make_key(5).save(keydir, PASSPHRASE, strength="min")
    assert not (keydir / MK_FILE).exists()
    assert (keydir / VK_FILE).read_bytes() == before[VK_FILE]


@posix_only
def test_dangling_symlink_is_not_replaced(tmp_path: Path) -> None:
    (keydir := tmp_path / "keys").mkdir()
    (keydir / MK_FILE).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(KeyFileError, match="exists; refusing to overwrite"):
        make_key().save(keydir, PASSPHRASE, strength="min")
    assert (keydir / MK_FILE).is_symlink() and not (tmp_path / "elsewhere").exists()
    assert sorted(p.name for p in keydir.iterdir()) == [MK_FILE]


def test_marking_key_created_meanwhile_survives(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The existence check and the write of the secret are one atomic step."""
    path = tmp_path / "keys" / MK_FILE
    real_link = os.link

    def racing_link(src: object, dst: object) -> None:
        if Path(str(dst)) == path:
            path.write_text("written by someone else")
        real_link(src, dst)

    monkeypatch.setattr(identity_module.os, "link", racing_link)
    with pytest.raises(KeyFileError, match="exists; refusing to overwrite"):
        make_key().save(path.parent, PASSPHRASE, strength="min")
    assert path.read_text() == "written by someone else"
    assert sorted(p.name for p in path.parent.iterdir()) == [MK_FILE]


def test_overwrite_when_asked(keydir: Path) -> None:
    make_key(7).save(keydir, "other", strength="min", overwrite=True)
    assert MarkingKey.load(keydir, "other").items.values[0]["label"] == 7
    if os.name == "posix":
        assert os.stat(keydir / MK_FILE).st_mode & 0o777 == 0o600


def test_key_too_large_to_load_is_not_written(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys_module, "MAX_MARKING_KEY_BYTES", 100)
    with pytest.raises(MalformedInputError, match="more than the 100"):
        make_key().save(tmp_path / "keys", PASSPHRASE, strength="min")
    assert list((tmp_path / "keys").iterdir()) == []


def test_repr_hides_the_secret() -> None:
    mk = make_key()
    for text in (repr(mk), str(mk), repr(mk.items), str(mk.items)):
        assert SECRET not in text and "c2VjcmV0LWltYWdl" not in text
        assert b64encode(NONCE) not in text and repr(NONCE) not in text
