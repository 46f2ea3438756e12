"""claimkit's weights digest and HTTP oracle against a second implementation written from
protocol_spec/weights.md, oracle-http.md and encoding.md alone
(protocol_spec/interop/oracle_from_spec.py).

Where the two disagree, the test that shows it is a strict xfail naming the finding; decide
from the spec which side is wrong before changing either. HTTP servers run in threads on
127.0.0.1, port 0. The few tests that need a torch model build one untrained (no training).
"""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from claimkit.errors import MalformedInputError, OracleError
from claimkit.ml.oracle import HttpEndpoint, OracleServer, endpoint_digest, normalise_url
from claimkit.weights import weights_digest as ck_digest

from conftest import imported_roots

ROOT = Path(__file__).resolve().parents[1]
SPEC_FILE = ROOT / "protocol_spec" / "interop" / "oracle_from_spec.py"
_spec = importlib.util.spec_from_file_location("oracle_from_spec", SPEC_FILE)
spec = importlib.util.module_from_spec(_spec)
sys.modules["oracle_from_spec"] = spec
_spec.loader.exec_module(spec)


def test_the_spec_oracle_imports_only_the_stdlib_and_rfc8785():
    roots = imported_roots(SPEC_FILE)
    allowed = set(sys.stdlib_module_names) | {"__future__", "rfc8785"}
    assert roots <= allowed, roots - allowed
    assert "claimkit" not in roots


# -- weights.md ----------------------------------------------------------------------------
def both(claimkit_side, spec_side) -> tuple:
    """-> (claimkit's result or None if it refuses, the spec's result or None if it refuses)."""
    try:
        ck = claimkit_side()
    except MalformedInputError:
        ck = None
    try:
        sp = spec_side()
    except spec.Malformed:
        sp = None
    return ck, sp


def both_digests(tmp_path, data: bytes, name="m.safetensors"):
    """-> (claimkit's hex or None if refused, the spec's hex or None if refused)."""
    (tmp_path / name).write_bytes(data)
    return both(lambda: ck_digest(tmp_path / name).hex, lambda: spec.weights_digest(data))


def raw(header: bytes, data: bytes) -> bytes:
    return struct.pack("<Q", len(header)) + header + data


def test_weights_vector():
    vector = json.loads((ROOT / "protocol_spec" / "vectors" / "weights.json").read_text())
    assert spec.weights_digest(bytes.fromhex(vector["file_hex"])) == vector["digest"]


TENSORS = {"conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
           "conv.bias": np.array([1, -2], dtype=np.int64),
           "empty": np.zeros((0, 3), dtype=np.float16),
           "é/x": np.array([[True, False]]),
           "scalar": np.array(3.5, dtype=np.float64),
           "u": np.arange(5, dtype=np.uint16)}


def resave(data: bytes, *, reverse=True, metadata=None, pad=0, spaces=False) -> bytes:
    """The same tensors, another file: other order of entries and buffers, metadata, padding."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    buf = data[8 + n:]
    names = [k for k in header if k != "__metadata__"]
    names = names[::-1] if reverse else names
    out, new, at = {}, b"", 0
    if metadata is not None:
        out["__metadata__"] = metadata
    for k in names:
        b, e = header[k]["data_offsets"]
        out[k] = {"data_offsets": [at, at + e - b], "shape": header[k]["shape"],
                  "dtype": header[k]["dtype"]}
        new += buf[b:e]
        at += e - b
    text = json.dumps(out, separators=None if spaces else (",", ":")).encode() + b" " * pad
    return raw(text, new)


def test_weights_digest_agrees_and_survives_resaving(tmp_path):
    save_file(TENSORS, tmp_path / "a.safetensors", metadata={"arch": "x"})
    a = (tmp_path / "a.safetensors").read_bytes()
    ck, sp = both_digests(tmp_path, a)
    assert ck == sp is not None
    for variant in (resave(a), resave(a, metadata={"k": "v", "z": ""}, pad=13),
                    resave(a, reverse=False, spaces=True, pad=1)):
        assert variant != a
        assert both_digests(tmp_path, variant) == (ck, ck)
    save_file(dict(reversed(TENSORS.items())), tmp_path / "b.safetensors")
    assert both_digests(tmp_path, (tmp_path / "b.safetensors").read_bytes()) == (ck, ck)
    changed = dict(TENSORS, u=np.arange(5, dtype=np.uint32))
    save_file(changed, tmp_path / "c.safetensors")
    ck2, sp2 = both_digests(tmp_path, (tmp_path / "c.safetensors").read_bytes())
    assert ck2 == sp2 != ck


def test_weights_digest_of_claimkit_saved_models(tmp_path):
    pytest.importorskip("torch")
    from claimkit.ml.models import build, save_model
    for seed, classes in ((0, 10), (1, 3)):
        model = build("digits-cnn", num_classes=classes, input_shape=(1, 8, 8), seed=seed)
        path = tmp_path / f"m{seed}.safetensors"
        digest = save_model(model, path, arch="digits-cnn", input_shape=(1, 8, 8),
                            num_classes=classes)
        data = path.read_bytes()
        assert spec.weights_digest(data) == ck_digest(path).hex == digest.hex
        assert spec.weights_digest(resave(data, metadata={}, pad=7)) == digest.hex


T = b'{"t":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}'
OK = b"\x01\x02"
MALFORMED = {
    "short file": b"\x05\x00\x00",
    "header length above 100,000,000": struct.pack("<Q", 100_000_001) + T + OK,
    "header past the end": struct.pack("<Q", 999) + T + OK,
    "empty header": raw(b"", b""),
    "not JSON": raw(b"{oops}", b""),
    "not an object": raw(b"[]", b""),
    "not UTF-8": raw(b'{"__metadata__":{"a":"\xff"},' + T[1:], OK),
    "lone surrogate in a name": raw(b'{"\\ud800":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', OK),
    "duplicate tensor": raw(b'{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                            b'"t":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', OK),
    "NaN": raw(b'{"__metadata__":{"a":NaN},' + T[1:], OK),
    "deeper than 32": raw(b'{"__metadata__":' + b'{"a":' * 40 + b'"x"' + b"}" * 40 + b"," + T[1:], OK),
    "unknown dtype": raw(T.replace(b"U8", b"X9"), OK),
    "lower-case dtype": raw(T.replace(b"U8", b"u8"), OK),
    "dtype outside the table (F8_E4M3FN)": raw(T.replace(b"U8", b"F8_E4M3FN"), OK),
    "count x size below end - begin": raw(T.replace(b"[2]", b"[1]"), OK),
    "count x size above end - begin": raw(T.replace(b"[2]", b"[3]"), OK),
    "buffer longer": raw(T, OK + b"\x00"),
    "buffer shorter": raw(T, OK[:1]),
    "hole at the start": raw(b'{"t":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}', b"\x00" + OK),
    "hole between": raw(b'{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                        b'"u":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}', b"\x00" * 3),
    "overlap": raw(b'{"t":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},'
                   b'"u":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}', b"\x00" * 3),
    "empty tensor past the end": raw(b'{"e":{"dtype":"U8","shape":[0],"data_offsets":[5,5]},' + T[1:], OK),
    "empty tensor inside another": raw(b'{"e":{"dtype":"U8","shape":[0],"data_offsets":[1,1]},' + T[1:], OK),
    "end before begin": raw(b'{"e":{"dtype":"U8","shape":[0],"data_offsets":[2,0]},' + T[1:], OK),
    "unknown member": raw(T.replace(b"]}}", b'],"x":1}}'), OK),
    "missing data_offsets": raw(b'{"t":{"dtype":"U8","shape":[2]}}', OK),
    "missing dtype": raw(b'{"t":{"shape":[2],"data_offsets":[0,2]}}', OK),
    "three offsets": raw(T.replace(b"[0,2]", b"[0,2,2]"), OK),
    "float offset": raw(T.replace(b"[0,2]", b"[0,2.0]"), OK),
    "float dimension": raw(T.replace(b"[2]", b"[2.0]"), OK),
    "boolean dimension": raw(T.replace(b"[2]", b"[true,2]"), OK),
    "negative dimension": raw(b'{"t":{"dtype":"U8","shape":[-2],"data_offsets":[0,0]}}', b""),
    "dimension above 2^53 - 1": raw(b'{"e":{"dtype":"U8","shape":[9007199254740993,0],'
                                    b'"data_offsets":[0,0]},' + T[1:], OK),
    "shape a string": raw(T.replace(b"[2]", b'"2"'), OK),
    "entry not an object": raw(b'{"t":[1]}', b""),
    "__metadata__ null": raw(b'{"__metadata__":null,' + T[1:], OK),
    "__metadata__ of numbers": raw(b'{"__metadata__":{"a":1},' + T[1:], OK),
    "__metadata__ nested": raw(b'{"__metadata__":{"a":{"b":"c"}},' + T[1:], OK),
    "BOM": raw(b"\xef\xbb\xbf" + T, OK),
    "NUL padding": raw(T + b"\x00\x00", OK),
    "element count x size far above": raw(b'{"t":{"dtype":"U8","shape":[9007199254740991,'
                                          b'9007199254740991],"data_offsets":[0,0]}}', b""),
    "offset 2^53": raw(b'{"t":{"dtype":"U8","shape":[0],"data_offsets":[9007199254740992,'
                       b'9007199254740992]}}', b""),
    "exponent offset 1e0": raw(T.replace(b"[0,2]", b"[0,2e0]"), OK),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_files_are_refused_by_both(tmp_path, name):
    assert both_digests(tmp_path, MALFORMED[name]) == (None, None)


ACCEPTED = {
    "trailing spaces": raw(T + b"      ", OK),
    "JSON whitespace inside": raw(b'{ "t" : {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]} }', OK),
    "no tensors": raw(b"{}", b""),
    "only metadata": raw(b'{"__metadata__":{}}', b""),
    "empty tensors at 0 and at the end": raw(b'{"e":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},'
                                             b'"f":{"dtype":"F64","shape":[3,0],"data_offsets":[2,2]},'
                                             + T[1:], OK),
    "every dtype": None,          # built below
    "an empty name": raw(b'{"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\x01"),
    "names ordered by UTF-8, not UTF-16": raw(
        '{"\uffff":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
        '"\U0001F600":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}'.encode(), OK),
    "0 x (2^53 - 1) elements": raw(b'{"t":{"dtype":"U8","shape":[0,9007199254740991],'
                                   b'"data_offsets":[0,0]}}', b""),
    "escaped member names and dtype": raw(b'{"\\u005f_metadata__":{"a":"b"},"t":{"dtype":'
                                          b'"\\u0055\\u0038","shape":[1],"data_offsets":[0,1]}}', b"\x01"),
    "CR LF space padding": raw(T + b"\r\n ", OK),
    "several empty tensors at one offset": raw(
        b'{"a":{"dtype":"U8","shape":[0],"data_offsets":[2,2]},'
        b'"b":{"dtype":"I64","shape":[0,4],"data_offsets":[2,2]},' + T[1:], OK),
}


def _every_dtype() -> bytes:
    header, at = {}, 0
    for i, (dtype, size) in enumerate(sorted(spec.DTYPE_SIZES.items())):
        header[dtype] = {"dtype": dtype, "shape": [2, 1], "data_offsets": [at, at + 2 * size]}
        at += 2 * size
    return raw(json.dumps(header).encode(), bytes(range(at)))


ACCEPTED["every dtype"] = _every_dtype()


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_well_formed_files_agree(tmp_path, name):
    ck, sp = both_digests(tmp_path, ACCEPTED[name])
    assert ck == sp is not None


def test_the_digest_orders_names_by_utf8():
    import hashlib
    lp = lambda b: struct.pack(">Q", len(b)) + b                      # noqa: E731
    want = hashlib.sha256(b"claimkit/weights/v1\n"
                          + lp("\uffff".encode()) + lp(b"U8") + lp(b"[1]") + lp(b"\x01")
                          + lp("\U0001F600".encode()) + lp(b"U8") + lp(b"[1]") + lp(b"\x02"))
    assert spec.weights_digest(ACCEPTED["names ordered by UTF-8, not UTF-16"]) == want.hexdigest()


# settled 2026-12-07: a strict xfail until claimkit's fix or the spec's rule landed
def test_leading_whitespace_in_the_header(tmp_path):
    ck, sp = both_digests(tmp_path, raw(b" " + T, OK))
    assert ck == sp


# settled 2026-12-07: a strict xfail until claimkit's fix or the spec's rule landed
def test_negative_zero_offset(tmp_path):
    data = raw(b'{"t":{"dtype":"U8","shape":[2],"data_offsets":[-0,2]}}', OK)
    ck, sp = both_digests(tmp_path, data)
    assert ck == sp


# -- oracle-http.md: subjects ------------------------------------------------------------------
def both_normalised(url):
    return both(lambda: normalise_url(url), lambda: spec.normalise_url(url))


URLS = ["HTTP://Models.Example.COM:80/v1/classify?model=a#frag", "https://h:443", "http://h:8080",
        "HTTPS://H:443/", "http://h:443/", "https://h:80/", "http://h:080/", "http://example.com:00080/",
        "http://[::1]:9/", "http://[::ABCD]/", "http://[::1]", "http://[::ffff:1.2.3.4]/",
        "http://h?x=1", "http://h#f", "http://h/#", "http://h.:81/", "http://h_x/", "http://1.2.3.4/",
        "http://H/%7e%7E/?Q=%41", "http://h/\\", "http://h/@x", "http://h/?@",
        "http://xn--bcher-kva.example/", "http://h:65535/", "http://h/" + "a" * 2039]
BAD_URLS = ["", "ftp://h/", "http://u:p@h/", "http://u@h/", "http://h /", "http://h/a b",
            "http://exämple.org/", "http://h/\x7f", "http://h:65536/", "http://h:+80/", "http:///x",
            "http:/h/", "http:h/", "//h/", "http://[::1/", "http://[::1]x/", "http://[v1.x]/",
            "http://h/" + "a" * 2040]


def test_the_worked_example():
    url = "HTTP://Models.Example.COM:80/v1/classify?model=a#frag"
    assert spec.endpoint_subject(url) == endpoint_digest(url).hex == \
        "52d0eae3980389882a944d022fcf219334ee01c7b3a83f44dec96ebfdb48184c"
    assert spec.onnx_subject(b"") == "0c49620a83ca13a1d5cf0fe55e54b92664485807275fca463f4a697ed8a6a02b"
    from claimkit.ml.oracle import onnx_digest
    assert spec.onnx_subject(b"\x08\x01claimkit") == onnx_digest(b"\x08\x01claimkit").hex


@pytest.mark.parametrize("url", URLS)
def test_normalised_urls_and_subjects_agree(url):
    ck, sp = both_normalised(url)
    assert ck == sp is not None
    assert spec.endpoint_subject(url) == endpoint_digest(url).hex


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_urls_are_refused_by_both(url):
    assert both_normalised(url) == (None, None)


# settled 2026-12-07: a strict xfail until claimkit's fix or the spec's rule landed
@pytest.mark.parametrize("url", ["http://h?", "http://h/?#x", "http://h/?"])
def test_an_empty_query_is_kept(url):
    assert both_normalised(url) == ("http://h/?", "http://h/?")


# settled 2026-12-07: a strict xfail until claimkit's fix or the spec's rule landed
@pytest.mark.parametrize("url", ["http://h\\x/", "http://*.x/", "http://h%41/", "http://a..b/",
                                 "http://-a/"])
def test_hosts_that_are_not_names_are_refused(url):
    assert both_normalised(url) == (None, None)


# settled 2026-12-07: a strict xfail until claimkit's fix or the spec's rule landed
@pytest.mark.parametrize("url", ["http://999.1.1.1/", "http://1.2.3/", "http://01.2.3.4/",
                                 "http://h:/", "http://h:0/"])
def test_open_host_and_port_forms(url):
    ck, sp = both_normalised(url)
    assert ck == sp


# -- a stub server, for answers either client may get -------------------------------------------
DESCRIBE = {"type": "claimkit/oracle/v1", "input_shape": [1, 2, 2], "num_classes": 3, "max_batch": 4}


class Stub(BaseHTTPRequestHandler):
    """GET: ``describe`` (bytes); POST: ``reply(n_images)`` -> (status, headers, body)."""

    protocol_version = "HTTP/1.1"
    describe = json.dumps(DESCRIBE).encode()
    reply = None
    sizes: list = []
    sleep = 0.0

    def _send(self, status, headers, body):
        self.send_response(status)
        names = {k.lower() for k, _ in headers}
        for k, v in headers:
            if v is not None:                      # None: leave the header out
                self.send_header(k, v)
        if "content-type" not in names:
            self.send_header("Content-Type", "application/json")
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def do_GET(self):
        self._send(200, [], type(self).describe)

    def do_POST(self):
        doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        n = len(doc["images"])
        type(self).sizes.append(n)
        time.sleep(type(self).sleep)
        self._send(*type(self).reply(n))

    def log_message(self, *args):
        pass


class Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


@pytest.fixture(scope="module")
def stub_server():
    server = Quiet(("127.0.0.1", 0), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def stub(stub_server):
    Stub.describe, Stub.sizes, Stub.sleep = json.dumps(DESCRIBE).encode(), [], 0.0
    Stub.reply = lambda n: (200, [], answer([[0.25, 0.25, 0.5]] * n))
    yield f"http://127.0.0.1:{stub_server.server_address[1]}/"


def answer(rows, **extra) -> bytes:
    return json.dumps({"type": "claimkit/answer/v1", "probabilities": rows, **extra}).encode()


def rows_of(text: str):
    """An answer body with ``text`` as every row (raw JSON)."""
    return lambda n: (200, [], b'{"type":"claimkit/answer/v1","probabilities":['
                      + b",".join([text.encode()] * n) + b"]}")


IMAGES = [bytes([i, 2 * i, 3 * i, 255 - i]) for i in range(6)]
ARRAY = np.frombuffer(b"".join(IMAGES), dtype=np.uint8).reshape(6, 1, 2, 2)


def both_ask(url, n=1, limit=None):
    """-> (claimkit's probabilities or its error line, the spec's likewise)."""
    out = []
    for ask in (lambda: HttpEndpoint.open(url, timeout=5, **({"max_response_bytes": limit}
                                                              if limit else {}))
                .probabilities(ARRAY[:n]).tolist(),
                lambda: spec.Client(url, timeout=5, **({"answer_limit": limit} if limit else {}))
                .probabilities(IMAGES[:n])):
        try:
            out.append(ask())
        except (OracleError, MalformedInputError, spec.OracleError) as e:
            assert "\n" not in str(e) and url in str(e), str(e)
            out.append(f"refused: {e}")
    return out


GOOD = {
    "one-hot integers": rows_of("[0,1,0]"),
    "a value of 1 + 1e-3": rows_of("[1.001,0,0]"),
    "sum 1 - 0.9e-3": rows_of("[0.3,0.3,0.3991]"),
    "sum 1 + 0.9e-3": rows_of("[0.3,0.3,0.4009]"),
    "-0.0": rows_of("[-0.0,0.5,0.5]"),
    "1e-400 (0.0)": rows_of("[1e-400,0.5,0.5]"),
    "exponents": rows_of("[2.5e-1,25E-2,5e-1]"),
    "whitespace": lambda n: (200, [], b' {\n"probabilities" : [' + b",".join([b"[0, 1, 0]"] * n)
                             + b'], "type": "claimkit/answer/v1"}\n'),
    "no Content-Length (read to the close)": lambda n: (200, [("Content-Length", None)],
                                                        answer([[0, 0, 1]] * n)),
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_answers_are_accepted_by_both(stub, name):
    Stub.reply = GOOD[name]
    ck, sp = both_ask(stub, n=3)
    assert not isinstance(ck, str) and ck == sp, (ck, sp)


BAD = {
    "not JSON": lambda n: (200, [], b"<html>not json</html>"),
    "NaN": rows_of("[NaN,0.5,0.5]"),
    "Infinity": rows_of("[Infinity,0,0]"),
    "1e400": rows_of("[1e400,0,0]"),
    "too many rows": lambda n: (200, [], answer([[0, 1, 0]] * (n + 1))),
    "too few rows": lambda n: (200, [], answer([[0, 1, 0]] * (n - 1))),
    "short row": rows_of("[0.5,0.5]"),
    "long row": rows_of("[0.5,0.5,0,0]"),
    "row not a list": rows_of('{"a":1}'),
    "strings": rows_of('["0.5","0.25","0.25"]'),
    "booleans": rows_of("[true,false,false]"),
    "null": rows_of("[null,1,0]"),
    "negative": rows_of("[-0.5,1.0,0.5]"),
    "tiny negative": rows_of("[-1e-300,0.5,0.5]"),
    "rows nested": rows_of("[[0,1,0]]"),
    "probabilities an object": lambda n: (200, [], b'{"type":"claimkit/answer/v1","probabilities":{}}'),
    "above 1 + 1e-3": rows_of("[1.0011,0,0]"),
    "sum 1 - 1.1e-3": rows_of("[0.3,0.3,0.3989]"),
    "sum 1 + 1.1e-3": rows_of("[0.3,0.3,0.4011]"),
    "sum 0.6": rows_of("[0.2,0.2,0.2]"),
    "unknown member": lambda n: (200, [], answer([[0, 1, 0]] * n, model="v2")),
    "missing type": lambda n: (200, [], json.dumps({"probabilities": [[0, 1, 0]] * n}).encode()),
    "wrong type": lambda n: (200, [], answer([[0, 1, 0]] * n).replace(b"answer/v1", b"query/v1")),
    "duplicate member": lambda n: (200, [], answer([[0, 1, 0]] * n)[:-1] + b',"type":"claimkit/answer/v1"}'),
    "an array, not an object": lambda n: (200, [], json.dumps([[0, 1, 0]] * n).encode()),
    "nesting 33 deep": lambda n: (200, [], answer([[0, 1, 0]] * n)[:-1]
                                  + b',"x":' + b"[" * 31 + b"]" * 31 + b"}"),
    "not UTF-8": lambda n: (200, [], answer([[0, 1, 0]] * n)[:-1] + b',"x":"\xff"}'),
    "HTTP 500 with an error document": lambda n: (500, [], json.dumps(
        {"type": "claimkit/error/v1", "error": "GPU on fire"}).encode()),
    "HTTP 500, an error of two lines": lambda n: (500, [], json.dumps(
        {"type": "claimkit/error/v1", "error": "GPU on fire\nreally"}).encode()),
    "HTTP 502, an error document above 4 KiB": lambda n: (502, [], json.dumps(
        {"type": "claimkit/error/v1", "error": "x" * 5000}).encode()),
    "HTTP 503 with HTML": lambda n: (503, [("Content-Type", "text/html")], b"<html>busy</html>"),
    "HTTP 404": lambda n: (404, [], b""),
    "HTTP 204": lambda n: (204, [("Content-Length", "0")], b""),
    "HTTP 302 redirect": lambda n: (302, [("Location", "http://127.0.0.1:9/")], b""),
    "HTTP 307 redirect": lambda n: (307, [("Location", "http://127.0.0.1:9/")], b""),
    "answer above the limit (Content-Length)": lambda n: (200, [], answer([[0, 1, 0]] * n) + b" " * 5000),
    "answer above the limit (no Content-Length, read to the close)": lambda n: (
        200, [("Content-Length", None)], answer([[0, 1, 0]] * n) + b" " * 5000),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_answers_are_refused_by_both(stub, name):
    Stub.reply = BAD[name]
    ck, sp = both_ask(stub, n=2, limit=4096)
    assert isinstance(ck, str) and isinstance(sp, str), (ck, sp)
    if name.startswith("HTTP 500"):
        assert "GPU on fire" in ck and "GPU on fire" in sp
    if name.startswith("HTTP 502"):                  # not quoted: only 4 KiB of it is read
        assert ck.endswith("HTTP 502") and sp.endswith("HTTP 502")


# settled 2026-12-07: a strict xfail until claimkit's fix or the spec's rule landed
@pytest.mark.parametrize("lengths", [["12x"], ["+{n}"], ["-1"], ["{n}", "{m}"]])
def test_an_invalid_content_length_is_refused(stub, lengths):
    body = answer([[0, 1, 0]] * 2)
    headers = [("Content-Length", v.format(n=len(body), m=len(body) + 5)) for v in lengths]
    Stub.reply = lambda n: (200, headers, body)
    ck, sp = both_ask(stub, n=2)
    assert isinstance(ck, str) and isinstance(sp, str), (ck, sp)


# settled 2026-12-07: a strict xfail until claimkit's fix or the spec's rule landed
@pytest.mark.parametrize("code", [201, 203, 206, 299])
def test_a_2xx_answer_other_than_200_is_a_failure(stub, code):
    Stub.reply = lambda n: (code, [], answer([[0, 1, 0]] * n))
    ck, sp = both_ask(stub, n=2)
    assert isinstance(ck, str) and isinstance(sp, str), (ck, sp)


class Describes203(Stub):
    def do_GET(self):
        self._send(203, [], json.dumps(DESCRIBE).encode())


# settled 2026-12-07: a strict xfail until claimkit's fix or the spec's rule landed
def test_a_description_with_a_2xx_status_other_than_200_is_a_failure():
    server = Quiet(("127.0.0.1", 0), Describes203)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with pytest.raises(spec.OracleError):
            spec.Client(url, timeout=5).describe()
        with pytest.raises((OracleError, MalformedInputError)):
            HttpEndpoint.open(url, timeout=5)
    finally:
        server.shutdown()
        server.server_close()


# settled 2026-12-07: a strict xfail until claimkit's fix or the spec's rule landed
def test_an_error_document_with_an_unknown_member_is_not_quoted(stub):
    Stub.reply = lambda n: (500, [], json.dumps({"type": "claimkit/error/v1", "error": "boom",
                                                 "code": 1}).encode())
    ck, sp = both_ask(stub, n=1)
    assert "boom" not in ck and "boom" not in sp


def test_an_answer_of_exactly_the_limit(stub):
    body = answer([[0, 1, 0]] * 2) + b" " * 2000        # claimkit's cap is at least 1,024
    Stub.reply = lambda n: (200, [], body)
    assert both_ask(stub, n=2, limit=len(body)) == [[[0.0, 1.0, 0.0]] * 2] * 2
    ck, sp = both_ask(stub, n=2, limit=len(body) - 1)
    assert isinstance(ck, str) and isinstance(sp, str)


class Recorder(Stub):
    requests: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).requests.append((self.command, self.path, dict(self.headers), body))
        n = len(json.loads(body)["images"])
        self._send(200, [], answer([[0, 1, 0]] * n))


@pytest.mark.parametrize("shape", [(1, 2, 2), (3, 2, 1)])
def test_both_clients_send_the_query_the_spec_describes(shape):
    """Content-Type, Content-Length, the request target, strict JSON, canonical base64, and the
    images channel-major (oracle-http.md *Images*: numpy's C order of [C, H, W])."""
    server = Quiet(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/p?m=1"
    Stub.describe = json.dumps(dict(DESCRIBE, input_shape=list(shape))).encode()
    Recorder.requests = []
    array = np.random.default_rng(1).integers(0, 256, (6, *shape), dtype=np.uint8)
    images = [im.tobytes() for im in array]
    try:
        HttpEndpoint.open(url, timeout=5).labels(array)
        spec.Client(url, timeout=5).labels(images)
    finally:
        server.shutdown()
        server.server_close()
    queries = [[], []]
    assert len(Recorder.requests) == 4                   # max_batch 4: 4 + 2, twice
    for i, (method, path, headers, body) in enumerate(Recorder.requests):
        assert (method, path) == ("POST", "/p?m=1")
        assert headers["Content-Type"] == "application/json"
        assert int(headers["Content-Length"]) == len(body) <= 64 * 2 ** 20
        doc = spec.members(spec.strict_json(body), "query", {"type", "shape", "images"})
        assert doc["type"] == "claimkit/query/v1" and doc["shape"] == list(shape)
        queries[i >= 2] += [spec.b64decode(s) for s in doc["images"]]
    assert queries == [images, images]


def test_a_tie_is_the_lowest_index_for_both(stub):
    Stub.reply = rows_of("[0.25,0.375,0.375]")
    assert HttpEndpoint.open(stub, timeout=5).labels(ARRAY[:2]) == \
        spec.Client(stub, timeout=5).labels(IMAGES[:2]) == [1, 1]


def test_the_content_type_of_an_answer(stub):
    """oracle-http.md asks JSON bodies of an answer and says nothing of its Content-Type."""
    Stub.reply = lambda n: (200, [("Content-Type", "text/html")], answer([[0, 1, 0]] * n))
    ck, sp = both_ask(stub, n=2)
    assert ck == sp == [[0.0, 1.0, 0.0]] * 2


BAD_DESCRIPTIONS = {
    "unknown member": dict(DESCRIBE, model="x"),
    "missing max_batch": {k: v for k, v in DESCRIBE.items() if k != "max_batch"},
    "wrong type": dict(DESCRIBE, type="claimkit/oracle/v2"),
    "num_classes 1": dict(DESCRIBE, num_classes=1),
    "num_classes 100001": dict(DESCRIBE, num_classes=100_001),
    "num_classes 3.0": dict(DESCRIBE, num_classes=3.0),
    "num_classes true": dict(DESCRIBE, num_classes=True),
    "max_batch 0": dict(DESCRIBE, max_batch=0),
    "max_batch 4097": dict(DESCRIBE, max_batch=4097),
    "input_shape of two": dict(DESCRIBE, input_shape=[2, 2]),
    "input_shape with 0": dict(DESCRIBE, input_shape=[0, 2, 2]),
    "input_shape with 4097": dict(DESCRIBE, input_shape=[1, 1, 4097]),
    "C*H*W above 2^24": dict(DESCRIBE, input_shape=[2, 4096, 4096]),
    "input_shape strings": dict(DESCRIBE, input_shape=["1", "2", "2"]),
}


@pytest.mark.parametrize("name", sorted(BAD_DESCRIPTIONS))
def test_malformed_descriptions_are_refused_by_both(stub, name):
    Stub.describe = json.dumps(BAD_DESCRIPTIONS[name]).encode()
    with pytest.raises((OracleError, MalformedInputError)):
        HttpEndpoint.open(stub, timeout=5)
    with pytest.raises(spec.OracleError):
        spec.Client(stub, timeout=5).describe()


RAW_DESCRIPTIONS = {
    "duplicate member": json.dumps(DESCRIBE).encode()[:-1] + b', "max_batch": 4}',
    "NaN": json.dumps(DESCRIBE).encode().replace(b"4}", b"NaN}"),
    "not UTF-8": json.dumps(DESCRIBE).encode()[:-1] + b', "x": "\xff"}',
    "not JSON": b"<html></html>",
    "an array": b"[]",
}


@pytest.mark.parametrize("name", sorted(RAW_DESCRIPTIONS))
def test_malformed_description_documents_are_refused_by_both(stub, name):
    Stub.describe = RAW_DESCRIPTIONS[name]
    with pytest.raises((OracleError, MalformedInputError)):
        HttpEndpoint.open(stub, timeout=5)
    with pytest.raises(spec.OracleError):
        spec.Client(stub, timeout=5).describe()


def test_description_limits_are_accepted_by_both(stub):
    d = dict(DESCRIBE, input_shape=[1, 4096, 4096], num_classes=100_000, max_batch=4096)
    Stub.describe = json.dumps(d).encode()
    ck = HttpEndpoint.open(stub, timeout=5)
    assert (ck.input_shape, ck.num_classes) == ((1, 4096, 4096), 100_000)
    assert spec.Client(stub, timeout=5).describe() == d


@pytest.mark.parametrize("classes, max_batch, per_request", [
    (3, 4, 4),                   # max_batch
    (3, 4096, 256),              # 256
    (100_000, 4096, 5),          # 16 MiB / (100,000 x 32 bytes)
    (70_000, 3, 3),
])
def test_requests_are_split_alike(stub, classes, max_batch, per_request):
    Stub.describe = json.dumps(dict(DESCRIBE, num_classes=classes, max_batch=max_batch)).encode()
    row = [1] + [0] * (classes - 1)
    Stub.reply = lambda n: (200, [], answer([row] * n))
    n = 2 * per_request + 1
    images = [bytes(4)] * n
    HttpEndpoint.open(stub, timeout=5).labels(np.zeros((n, 1, 2, 2), dtype=np.uint8))
    ck, Stub.sizes = Stub.sizes, []
    spec.Client(stub, timeout=5).labels(images)
    assert ck == Stub.sizes == [per_request, per_request, 1]


# settled 2026-12-07: a strict xfail until claimkit's fix or the spec's rule landed
def test_requests_are_split_to_keep_the_body_under_64_mib(stub):
    Stub.describe = json.dumps(dict(DESCRIBE, input_shape=[1, 4096, 4096], max_batch=3)).encode()
    Stub.reply = lambda n: (200, [], answer([[0, 1, 0]] * n))
    assert HttpEndpoint.open(stub, timeout=60).labels(np.zeros((3, 1, 4096, 4096), np.uint8)) == [1] * 3
    assert spec.Client(stub, timeout=60).labels([bytes(2 ** 24)] * 3) == [1] * 3


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan"), 86_400.5])
def test_a_timeout_must_be_finite_and_at_most_a_day_for_both(stub, timeout):
    with pytest.raises((OracleError, MalformedInputError)):
        HttpEndpoint.open(stub, timeout=timeout)
    with pytest.raises(spec.OracleError):
        spec.Client(stub, timeout=timeout)
    spec.Client(stub, timeout=86_400).describe()
    HttpEndpoint.open(stub, timeout=86_400)


def test_a_slow_answer_is_a_failure_for_both(stub):
    Stub.sleep = 1.0
    with pytest.raises(OracleError):
        HttpEndpoint.open(stub, timeout=0.3).labels(ARRAY[:1])
    with pytest.raises(spec.OracleError):
        spec.Client(stub, timeout=0.3).labels(IMAGES[:1])


class Trickler(BaseHTTPRequestHandler):
    """Describes itself, then answers a POST one byte every 0.1 s (about 6 s in all)."""

    def do_GET(self):
        body = json.dumps(DESCRIBE).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = answer([[0, 1, 0]])
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for i in range(len(body)):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    def log_message(self, *args):
        pass


def test_one_deadline_bounds_a_trickled_answer_for_both():
    server = Quiet(("127.0.0.1", 0), Trickler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        for ask, error in ((lambda: HttpEndpoint.open(url, timeout=0.6).labels(ARRAY[:1]), OracleError),
                           (lambda: spec.Client(url, timeout=0.6).labels(IMAGES[:1]), spec.OracleError)):
            start = time.monotonic()
            with pytest.raises(error):
                ask()
            assert time.monotonic() - start < 2.5
    finally:
        server.shutdown()
        server.server_close()


def test_an_endpoint_that_is_down_is_a_failure_for_both(stub_server):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/"
    with pytest.raises(OracleError):
        HttpEndpoint.open(url, timeout=2)
    with pytest.raises(spec.OracleError, match="127.0.0.1"):
        spec.Client(url, timeout=2).describe()


# -- each client against the other's server ---------------------------------------------------------
@pytest.fixture(scope="module")
def local(tmp_path_factory):
    pytest.importorskip("torch")
    from claimkit.ml.models import build, save_model
    from claimkit.ml.oracle import LocalModel
    path = tmp_path_factory.mktemp("spec-oracle") / "m.safetensors"
    save_model(build("digits-cnn", num_classes=10, input_shape=(1, 8, 8), seed=3), path,
               arch="digits-cnn", input_shape=(1, 8, 8), num_classes=10)
    return LocalModel.from_file(path, device="cpu")


@pytest.fixture(scope="module")
def claimkit_server(local):
    server = OracleServer(local, ("127.0.0.1", 0), max_batch=7)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


DIGITS = np.random.default_rng(5).integers(0, 256, (20, 1, 8, 8), dtype=np.uint8)


def test_the_spec_client_against_claimkit_server(claimkit_server, local):
    client = spec.Client(claimkit_server.url, timeout=30)
    assert client.describe() == {"type": "claimkit/oracle/v1", "input_shape": [1, 8, 8],
                                 "num_classes": 10, "max_batch": 7}
    images = [im.tobytes() for im in DIGITS]
    p = np.array(client.probabilities(images))
    assert np.allclose(p, local.probabilities(DIGITS), atol=1e-6)
    assert client.labels(images) == local.labels(DIGITS)
    assert spec.endpoint_subject(claimkit_server.url) == endpoint_digest(claimkit_server.url).hex \
        == HttpEndpoint.open(claimkit_server.url).subject.hex
    assert client.url == HttpEndpoint.open(claimkit_server.url).name


def _post(url, body: bytes | None, headers=None, path=None):
    import http.client
    from urllib.parse import urlsplit
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        if body is None:
            conn.putrequest("POST", path or u.path)
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            conn.endheaders()
        else:
            conn.request("POST", path or u.path, body=body,
                         headers={"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _query(images, shape=(1, 8, 8)):
    return json.dumps({"type": "claimkit/query/v1", "shape": list(shape),
                       "images": [spec.b64encode(b) for b in images]}).encode()


def test_claimkit_server_refusals_are_the_spec_ones(claimkit_server):
    url = claimkit_server.url
    ok = bytes(64)
    for body, status in [
            (_query([ok]), 200),
            (_query([ok] * 8), 400),                            # above max_batch
            (_query([]), 400),                                  # no image
            (_query([ok], shape=(1, 8, 9)), 400),               # another shape
            (_query([bytes(63)]), 400),                         # not C*H*W bytes
            (_query([ok]).replace(b'AA=="', b'AB=="'), 400),    # non-canonical base64
            (_query([ok]).replace(b'AA=="', b'AA"'), 400),      # unpadded base64
            (_query([ok])[:-1] + b', "x": 1}', 400)]:           # unknown member
        got, data = _post(url, body)
        assert got == status, (got, data[:200])
        if status != 200:
            doc = spec.strict_json(data)
            assert set(doc) == {"type", "error"} and doc["type"] == "claimkit/error/v1"
    assert _too_large(url) == 413
    got, data = _post(url, _query([ok]), path="/elsewhere")
    assert got == 404 and spec.strict_json(data)["type"] == "claimkit/error/v1"
    got, data = _post(url, None)                                # no Content-Length
    assert got == 411 and spec.strict_json(data)["type"] == "claimkit/error/v1"


def _raw(url, request: bytes) -> bytes:
    import socket
    from urllib.parse import urlsplit
    u = urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def _too_large(url) -> int:
    """The status of a query announcing 10^6 bytes (sending 8: a server may refuse it unread)."""
    reply = _raw(url, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 1000000\r\n\r\n{\"type\":")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert spec.strict_json(body)["type"] == "claimkit/error/v1"
    return int(head.split()[1])


def _bad_http_gets_error_documents(url):
    for request, status in [(b"BLAH / HTTP/1.1\r\nHost: x\r\n\r\n", 501),
                            (b"garbage\r\n\r\n", 400),
                            (b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n", 404)]:
        reply = _raw(url, request)
        head, _, body = reply.partition(b"\r\n\r\n")
        if head.startswith(b"HTTP/"):
            assert int(head.split()[1]) == status, reply[:200]
        else:                      # an HTTP/0.9-style answer to a request line of no version
            body = reply
        doc = spec.strict_json(body)
        assert set(doc) == {"type", "error"} and doc["type"] == "claimkit/error/v1"


def test_claimkit_server_answers_malformed_http_with_error_documents(claimkit_server):
    _bad_http_gets_error_documents(claimkit_server.url)


def _size_limit(url):
    """The largest query body (a one-image query padded with spaces) not refused with 413."""
    q = _query([bytes(64)])
    lo, hi = len(q), 10 ** 6
    while hi - lo > 1:
        mid = (lo + hi) // 2
        body = q[:-1] + b" " * (mid - len(q)) + b"}"
        if _post(url, body)[0] == 413:
            hi = mid
        else:
            lo = mid
    return lo


# settled 2026-12-07: a strict xfail until claimkit's fix or the spec's rule landed
def test_both_servers_bound_a_query_alike(claimkit_server, spec_server7):
    assert _size_limit(claimkit_server.url) == _size_limit(spec_server7.url)


# settled 2026-12-07: a strict xfail until claimkit's fix or the spec's rule landed
def test_an_invalid_request_content_length_gets_the_same_status(claimkit_server, spec_server7):
    q = _query([bytes(64)])
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +%d\r\n\r\n" % len(q) + q
    statuses = [_raw(u, request).split(b" ")[1] for u in (claimkit_server.url, spec_server7.url)]
    assert statuses[0] == statuses[1], statuses


@pytest.fixture(scope="module")
def spec_server7():
    server = spec.serve({}, (1, 8, 8), 10, max_batch=7)
    yield server
    server.shutdown()
    server.server_close()


def test_the_spec_server_answers_malformed_http_with_error_documents(spec_server7):
    _bad_http_gets_error_documents(spec_server7.url)


@pytest.fixture(scope="module")
def spec_server():
    rng = np.random.default_rng(9)
    images = rng.integers(0, 256, (12, 1, 8, 8), dtype=np.uint8)
    table = {im.tobytes(): int(i % 10) for i, im in enumerate(images)}
    table[images[0].tobytes()] = [0.05] * 9 + [0.55]            # a probability row
    server = spec.serve(table, (1, 8, 8), 10, max_batch=5, default=4)
    yield server, images, table
    server.shutdown()
    server.server_close()


def test_claimkit_client_against_the_spec_server(spec_server):
    server, images, table = spec_server
    endpoint = HttpEndpoint.open(server.url, timeout=10)
    assert (endpoint.input_shape, endpoint.num_classes, endpoint.max_batch) == ((1, 8, 8), 10, 5)
    queries = np.concatenate([images, np.full((3, 1, 8, 8), 7, dtype=np.uint8)])
    want = [9] + [i % 10 for i in range(1, 12)] + [4, 4, 4]
    assert endpoint.labels(queries) == want                      # 15 images: 3 requests of 5
    p = endpoint.probabilities(queries[:1])
    assert math.isclose(p[0][9], 0.55) and endpoint.subject.hex == spec.endpoint_subject(server.url)
    assert spec.Client(server.url).labels([q.tobytes() for q in queries]) == want


def test_the_spec_server_refuses_bad_queries(spec_server):
    server, _, _ = spec_server
    for body, status in [(_query([bytes(64)] * 6), 400), (_query([bytes(63)]), 400),
                         ]:
        assert _post(server.url, body)[0] == status
    assert _too_large(server.url) == 413
    assert _post(server.url, None)[0] == 411
