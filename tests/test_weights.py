"""The canonical weights digest of safetensors files, without torch."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import save_file

from claimkit.errors import MalformedInputError
from claimkit.weights import read_header, weights_digest

TENSORS = {"conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
           "conv.bias": np.array([1, -2], dtype=np.int64),
           "empty": np.zeros((0, 3), dtype=np.float16)}


def test_digest_ignores_order_metadata_and_padding(tmp_path):
    save_file(TENSORS, tmp_path / "a.safetensors", metadata={"arch": "digits-cnn"})
    save_file(dict(reversed(TENSORS.items())), tmp_path / "b.safetensors")
    assert weights_digest(tmp_path / "a.safetensors") == weights_digest(tmp_path / "b.safetensors")
    assert read_header(tmp_path / "a.safetensors").metadata == {"arch": "digits-cnn"}
    assert [t.name for t in read_header(tmp_path / "a.safetensors").tensors] == \
        ["conv.bias", "conv.weight", "empty"]


@pytest.mark.parametrize("change", [
    lambda t: {**t, "conv.bias": np.array([1, -3], dtype=np.int64)},
    lambda t: {**t, "conv.bias": np.array([1, -2], dtype=np.int32)},
    lambda t: {**t, "conv.weight": t["conv.weight"].reshape(3, 2, 4)},
    lambda t: {**{k: v for k, v in t.items() if k != "empty"}},
    lambda t: {**{k if k != "conv.bias" else "conv.b": v for k, v in t.items()}},
])
def test_digest_changes_with_the_weights(tmp_path, change):
    save_file(TENSORS, tmp_path / "a.safetensors")
    save_file(change(dict(TENSORS)), tmp_path / "b.safetensors")
    assert weights_digest(tmp_path / "a.safetensors") != weights_digest(tmp_path / "b.safetensors")


def write_raw(path, header: dict, data: bytes, pad: int = 0) -> None:
    raw = json.dumps(header).encode() + b" " * pad
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


@pytest.mark.parametrize("header, data, message", [
    ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 7, "cover|buffer"),
    ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 9, "cover|buffer"),
    ({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\x00" * 8, "shape and dtype"),
    ({"t": {"dtype": "X9", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 8, "unknown dtype"),
    ({"t": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
      "u": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}, b"\x00" * 6, "hole or overlaps"),
    ({"t": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}}, b"\x00" * 4, "hole or overlaps"),
    ({"t": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2], "x": 1}}, b"\x00" * 2, "unknown field"),
    ({"__metadata__": {"a": 1}}, b"", "__metadata__"),
    ({"t": {"dtype": "U8", "shape": [-2], "data_offsets": [0, 0]}}, b"", "non-negative"),
])
def test_malformed_files_are_refused(tmp_path, header, data, message):
    write_raw(tmp_path / "m.safetensors", header, data)
    with pytest.raises(MalformedInputError, match=message):
        weights_digest(tmp_path / "m.safetensors")


def test_negative_zero_is_refused(tmp_path):
    """Python reads -0 as 0, safetensors' Rust reader as the float -0.0 (and refuses the
    file): the same file passed our checks and then crashed the loader."""
    raw = b'{"t":{"dtype":"U8","shape":[2],"data_offsets":[-0,2]}}'
    (tmp_path / "m.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + b"\x00\x00")
    with pytest.raises(MalformedInputError, match="-0 is not an integer"):
        weights_digest(tmp_path / "m.safetensors")


def test_truncated_and_foreign_files(tmp_path):
    save_file(TENSORS, tmp_path / "a.safetensors")
    whole = (tmp_path / "a.safetensors").read_bytes()
    for cut in (0, 4, 8, 20, len(whole) - 1):
        (tmp_path / "t.safetensors").write_bytes(whole[:cut])
        with pytest.raises(MalformedInputError):
            weights_digest(tmp_path / "t.safetensors")
    # A pickle (what torch.save writes) is refused as data, never executed.
    import pickle
    (tmp_path / "p.safetensors").write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(MalformedInputError):
        weights_digest(tmp_path / "p.safetensors")
    (tmp_path / "huge.safetensors").write_bytes(struct.pack("<Q", 2**63) + b"{}")
    with pytest.raises(MalformedInputError, match="header length"):
        weights_digest(tmp_path / "huge.safetensors")


def test_header_padding_is_allowed(tmp_path):
    write_raw(tmp_path / "a.safetensors", {"t": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}},
              b"\x01\x02", pad=6)
    write_raw(tmp_path / "b.safetensors", {"t": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}},
              b"\x01\x02")
    assert weights_digest(tmp_path / "a.safetensors") == weights_digest(tmp_path / "b.safetensors")


def test_known_answer_vector(tmp_path):
    from pathlib import Path
    vector = json.loads((Path(__file__).resolve().parents[1] / "protocol_spec" / "vectors" /
                         "weights.json").read_text())
    (tmp_path / "v.safetensors").write_bytes(bytes.fromhex(vector["file_hex"]))
    assert weights_digest(tmp_path / "v.safetensors").hex == vector["digest"]


def test_a_fifo_is_refused_not_waited_on(tmp_path):
    """A plain open() of a FIFO blocks until a writer comes: --model FIFO hung."""
    import os
    import threading
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    errors = []

    def read():
        for reader in (read_header, weights_digest):
            try:
                reader(fifo)
            except MalformedInputError as e:
                errors.append(str(e))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():                  # release the blocked open before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("reading a FIFO blocked")
    assert len(errors) == 2 and all("not a regular file" in e for e in errors)
