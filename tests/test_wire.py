"""Strict parsing and canonical bytes."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claimkit.errors import MalformedInputError
from claimkit.wire import (Digest, Fields, atomic_write, b64decode, b64encode, canonical_json,
                           load_json)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20)


def test_rfc8785_known_answer():
    # RFC 8785 §3.2.2 sorts keys by UTF-16 code units and writes numbers the ECMAScript way.
    assert canonical_json({"b": [1, 2.0, "é"], "a": None, "\u20ac": True, "\U0001f600": 1}) == \
        '{"a":null,"b":[1,2,"é"],"€":true,"😀":1}'.encode()  # U+20AC < U+D83D


@given(json_values)
def test_canonical_json_round_trips(value):
    assert canonical_json(load_json(canonical_json(value))) == canonical_json(value)


@pytest.mark.parametrize("data, message", [
    (b'{"a": 1, "a": 2}', "duplicate key"),
    (b'[NaN]', "NaN"),
    (b'{"a": Infinity}', "Infinity"),
    (b'\xff', "UTF-8"),
    (b'{"a": ', "not valid JSON"),
    (b'[' * 40 + b']' * 40, "deeper"),
    (b'[' * 100_000, "not valid JSON|deeper"),
    (b'{"\\ud800": 1}', "lone surrogate"),               # a key
    (b'{"a": ["x", {"b": "y\\udc00"}]}', "lone surrogate"),  # a nested value
    (b'"\\uDBFF"', "lone surrogate"),                      # the document itself
    (b'{"p_value": 1e400}', "beyond the double range"),   # json reads it as infinity
    (b'[-1e999]', "beyond the double range"),
])
def test_untrusted_json_is_refused(data, message):
    with pytest.raises(MalformedInputError, match=message):
        load_json(data)


def test_surrogate_pairs_and_escaped_backslashes_are_text():
    """Only a lone surrogate is refused: a pair is one character, and an escaped
    backslash before "ud800" is six plain characters."""
    assert load_json(b'["\\ud83d\\ude00", "\\\\ud800"]') == ["\U0001F600", "\\ud800"]
    with pytest.raises(MalformedInputError, match="^doc: JSON nested deeper"):
        load_json(b'[' * 40 + b']' * 40, what="doc")     # the document named, as every error


def test_a_file_that_does_not_fit_in_memory_is_one_line(tmp_path, monkeypatch):
    """A sparse file within the limit can be far larger than memory: read() raises
    MemoryError, which no caller catches."""
    import claimkit.wire as wire

    path = tmp_path / "big"
    path.write_bytes(b"x" * 10)
    real = wire.os.fdopen

    class Huge:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def read(self, n):
            raise MemoryError

    monkeypatch.setattr(wire.os, "fdopen", lambda *a, **k: Huge(real(*a, **k)))
    with pytest.raises(MalformedInputError, match="big: 10 bytes do not fit in memory"):
        wire.read_regular_file(path, max_bytes=100)


def test_size_limit():
    with pytest.raises(MalformedInputError, match="larger"):
        load_json(b"[" + b"1," * 100 + b"1]", max_bytes=50)


def test_base64_is_strict():
    assert b64decode(b64encode(b"abc")) == b"abc"
    for bad in ["YWJj\n", "YWJ", "YW=j", "YWJk=", "????"]:
        with pytest.raises(MalformedInputError):
            b64decode(bad)
    with pytest.raises(MalformedInputError, match="expected 4 bytes"):
        b64decode(b64encode(b"abc"), size=4)


def test_digest_form():
    d = Digest.of(b"")
    assert d.to_dict() == {"sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
    assert Digest.from_dict(d.to_dict()) == d
    for bad in [{"sha256": "E3" * 32}, {"sha256": "e3"}, {"sha512": "00"}, {"sha256": "e3" * 32, "x": 1}]:
        with pytest.raises(MalformedInputError):
            Digest.from_dict(bad)


def test_fields_name_the_offending_field():
    f = Fields({"n": "3", "extra": 1}, "thing")
    with pytest.raises(MalformedInputError, match=r"thing\.n: expected an integer"):
        f.int("n")
    with pytest.raises(MalformedInputError, match=r"thing\.m: missing"):
        f.int("m")
    f2 = Fields({"n": 3, "extra": 1}, "thing")
    f2.int("n")
    with pytest.raises(MalformedInputError, match="unknown field 'extra'"):
        f2.done()
    with pytest.raises(MalformedInputError, match="outside"):
        Fields({"n": 2**70}, "t").int("n")
    with pytest.raises(MalformedInputError, match="expected an integer"):
        Fields({"n": True}, "t").int("n")


def test_atomic_write_sets_mode_and_replaces(tmp_path):
    target = tmp_path / "secret"
    atomic_write(target, b"one", mode=0o600)
    atomic_write(target, b"two", mode=0o600)
    assert target.read_bytes() == b"two"
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


def test_atomic_write_errors_name_the_file_asked_for(tmp_path):
    """They named the temporary file (".x.safetensors.w3q7edzd.tmp"), which the user never
    asked for; a folder where the file should go, or a missing folder, is named itself."""
    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / "missing" / "x.json", b"{}")
    assert info.value.filename == str(tmp_path / "missing" / "x.json")
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / "taken", b"{}")
    assert info.value.filename == str(tmp_path / "taken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_read_regular_file_refuses_special_files_and_bounds_the_read(tmp_path):
    """A FIFO or /dev/zero named like an input must not hang or exhaust memory."""
    import os

    from claimkit.wire import read_json_file, read_regular_file
    small = tmp_path / "small.json"
    small.write_bytes(b'{"a": 1}')
    assert read_regular_file(small, max_bytes=8) == b'{"a": 1}'
    with pytest.raises(MalformedInputError, match="larger than 7 bytes"):
        read_regular_file(small, max_bytes=7)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    for special in (fifo, zero, tmp_path):
        with pytest.raises(MalformedInputError, match="not a regular file"):
            read_json_file(special)
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "missing", max_bytes=8)
    with pytest.raises(MalformedInputError, match="cannot read"):
        read_json_file(tmp_path / "missing")


def test_digests_match_only_themselves():
    a, b = Digest.of(b"a"), Digest.of(b"b")
    assert a.matches(Digest.of(b"a")) and not a.matches(b) and not b.matches(a)
    assert not a.matches(Digest(a.value[:-1] + bytes([a.value[-1] ^ 1])))


def test_canonical_integers_refuse_minus_zero():
    """-0 is 0 to Python and -0.0 to other readers: refused where integers must be canonical."""
    assert load_json(b"[0, -1, -0.0]", canonical_integers=True) == [0, -1, -0.0]
    assert load_json(b"-0") == 0
    for data in (b"-0", b"[1, -0]", b'{"a": -0}'):
        with pytest.raises(MalformedInputError, match="-0"):
            load_json(data, canonical_integers=True)
