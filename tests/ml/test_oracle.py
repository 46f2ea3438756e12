"""Oracles: a local model, an ONNX file, an HTTP endpoint; and the CLI flows through them.

One marked digits model is made once for the module (through the owner's commands),
then queried in every form. HTTP servers run in threads on 127.0.0.1, port 0.
"""

from __future__ import annotations

import base64
import http.client
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from claimkit.claim.bundle import ClaimBundle
from claimkit.cli import cli
from claimkit.errors import MalformedInputError, OracleError
from claimkit.ml.data import load_dataset
from claimkit.ml.oracle import (
    DEFAULT_TIMEOUT,
    HttpEndpoint,
    LocalModel,
    OnnxModel,
    OracleServer,
    endpoint_digest,
    normalise_url,
    onnx_digest,
    open_oracle,
)
from claimkit.ml.oracle_checks import MAX_BATCH, MAX_CLASSES

torch.set_num_threads(2)
ENV = {"CLAIMKIT_PASSPHRASE": "pw", "CLAIMKIT_LOG_PASSPHRASE": "pw"}


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], env=ENV)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An owner with a registered trigger-set key and a marked model (via the CLI)."""
    d = tmp_path_factory.mktemp("oracle")
    for args in (("keys", "new", "--out", d / "owner.key"),
                 ("keys", "new", "--out", d / "arbiter.key"),
                 ("registry", "init", d / "reg"),
                 ("keygen", "--data", "digits", "-p", "items=40", "--out", d / "keys"),
                 ("register", d / "keys", "--registry", d / "reg", "--identity", d / "owner.key",
                  "--out", d / "receipt.json"),
                 ("mark", d / "keys", "--data", "digits", "--epochs", "4", "--device", "cpu",
                  "--out", d / "released.safetensors")):
        result = run(*args)
        assert result.exit_code == 0, result.output
    return d


@pytest.fixture(scope="module")
def local(world):
    return LocalModel.from_file(world / "released.safetensors", device="cpu")


@pytest.fixture(scope="module")
def images():
    return load_dataset("digits").x_test


class Switchable:
    """Wraps an oracle; ``delay`` seconds of sleep before each answer when set."""

    def __init__(self, oracle):
        self.oracle, self.delay = oracle, 0.0
        self.input_shape, self.num_classes = oracle.input_shape, oracle.num_classes

    def probabilities(self, images):
        time.sleep(self.delay)
        return self.oracle.probabilities(images)


def start(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def served(local):
    server = start(OracleServer(Switchable(local), ("127.0.0.1", 0), max_batch=100))
    yield server
    server.shutdown()
    server.server_close()


# -- a local model ---------------------------------------------------------------------
def test_local_model_labels_and_probabilities_on_digits(local, images):
    labels = local.labels(images)
    p = local.probabilities(images, batch_size=100)
    assert p.shape == (len(images), 10) and p.dtype == np.float64
    assert np.allclose(p.sum(axis=1), 1, atol=1e-5) and (p >= 0).all()
    assert labels == p.argmax(axis=1).tolist()
    assert np.mean(np.array(labels) == load_dataset("digits").y_test) > 0.85
    assert local.name == "released.safetensors" and local.subject == local.info.digest
    with pytest.raises(MalformedInputError, match="shape"):
        local.labels(np.zeros((2, 1, 28, 28), dtype=np.uint8))


@pytest.mark.parametrize("spoil", ["negative variance", "huge weights"])
def test_local_model_outputs_are_checked(tmp_path, spoil):
    """Finite weights that compute NaN: refused, not read as class 0."""
    from claimkit.ml.models import build, save_model
    model = build("digits-cnn", num_classes=10, seed=0)
    with torch.no_grad():
        if spoil == "negative variance":
            model[2].running_var.fill_(-1)          # sqrt(-1 + eps): NaN
        else:
            model[-1].weight.fill_(3e38)            # logits overflow float32
    save_model(model, tmp_path / "m.safetensors", arch="digits-cnn", input_shape=(1, 8, 8),
               num_classes=10)
    oracle = LocalModel.from_file(tmp_path / "m.safetensors", device="cpu")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 1, 8, 8), dtype=np.uint8)
    for query in (oracle.labels, oracle.probabilities):
        with pytest.raises(OracleError, match="m.safetensors: NaN or infinite outputs"):
            query(images)


# -- ONNX ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def onnx_file(world):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = world / "released.onnx"
    result = run("export", world / "released.safetensors", "--onnx", out, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["subject"]["sha256"] == onnx_digest(out.read_bytes()).hex
    return out


def test_onnx_export_answers_like_the_torch_model(onnx_file, local, images):
    model = OnnxModel.from_file(onnx_file, device="cpu")
    assert (model.input_shape, model.num_classes, model.fixed_batch) == ((1, 8, 8), 10, None)
    assert model.subject == onnx_digest(onnx_file.read_bytes()) and model.name == "released.onnx"
    model.batch_size = 100                     # several batches
    assert model.labels(images) == local.labels(images)
    assert np.allclose(model.probabilities(images), local.probabilities(images), atol=1e-5)


def _edit(onnx_file, tmp_path, change):
    import onnx
    proto = onnx.load_model_from_string(onnx_file.read_bytes())
    change(onnx, proto)
    path = tmp_path / "edited.onnx"
    path.write_bytes(proto.SerializeToString())
    return path


def test_onnx_fixed_batch_and_probability_outputs(onnx_file, local, images, tmp_path):
    def fix_batch(onnx, proto):
        for value in (proto.graph.input[0], proto.graph.output[0]):
            value.type.tensor_type.shape.dim[0].dim_value = 3
    fixed = OnnxModel.from_file(_edit(onnx_file, tmp_path, fix_batch), device="cpu")
    assert fixed.fixed_batch == 3
    assert fixed.labels(images[:7]) == local.labels(images[:7])   # 3 + 3 + 1 padded

    def add_softmax(onnx, proto):
        out = proto.graph.output[0]
        proto.graph.node.append(onnx.helper.make_node("Softmax", [out.name], ["p"], axis=1))
        del proto.graph.output[:]
        proto.graph.output.append(onnx.helper.make_tensor_value_info("p", onnx.TensorProto.FLOAT,
                                                                     ["batch", 10]))
    path = _edit(onnx_file, tmp_path, add_softmax)
    probs = OnnxModel.from_file(path, device="cpu", outputs="probabilities")
    assert np.allclose(probs.probabilities(images[:20]), local.probabilities(images[:20]), atol=1e-5)
    # Read as logits, the same file's softmax is a different vector: the caller must say.
    assert not np.allclose(OnnxModel.from_file(path, device="cpu").probabilities(images[:20]),
                           local.probabilities(images[:20]), atol=1e-3)


def _wide_model(width):
    """An ONNX graph answering (N, width): the image mean, repeated."""
    from onnx import TensorProto, helper, numpy_helper
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Unsqueeze", ["m", "one"], ["u"]),
             helper.make_node("Expand", ["u", "s"], ["y"])]
    graph = helper.make_graph(
        nodes, "wide", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])],
        initializer=[numpy_helper.from_array(np.array([1], dtype=np.int64), "one"),
                     numpy_helper.from_array(np.array([1, width], dtype=np.int64), "s")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_onnx_refusals(onnx_file, tmp_path, monkeypatch):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07not a model at all")
    with pytest.raises(OracleError, match="garbage.onnx: (not an ONNX model|onnxruntime cannot)"):
        OnnxModel.from_file(garbage)

    def external(onnx, proto):
        onnx.external_data_helper.convert_model_to_external_data(proto, location="w.bin",
                                                                 size_threshold=0)
    with pytest.raises(OracleError, match="external data"):
        OnnxModel.from_file(_edit(onnx_file, tmp_path, external))

    def two_inputs(onnx, proto):
        proto.graph.input.append(onnx.helper.make_tensor_value_info("extra", onnx.TensorProto.FLOAT, [1]))
    with pytest.raises(OracleError, match="one input"):
        OnnxModel.from_file(_edit(onnx_file, tmp_path, two_inputs))
    with pytest.raises(MalformedInputError, match="shape"):
        OnnxModel.from_file(onnx_file).labels(np.zeros((1, 1, 9, 9), dtype=np.uint8))

    def huge_batch(onnx, proto):
        for value in (proto.graph.input[0], proto.graph.output[0]):
            value.type.tensor_type.shape.dim[0].dim_value = MAX_BATCH + 1
    with pytest.raises(OracleError, match=f"fixed batch of {MAX_BATCH + 1}"):
        OnnxModel.from_file(_edit(onnx_file, tmp_path, huge_batch), device="cpu")
    with monkeypatch.context() as patch:      # a static width is refused before any run
        patch.setattr(OnnxModel, "_run", lambda *a: pytest.fail("ran the model"))
        with pytest.raises(OracleError, match=f"{MAX_CLASSES + 1} classes"):
            OnnxModel.from_bytes(_wide_model(MAX_CLASSES + 1), name="wide", device="cpu")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(OracleError, match=r"pip install 'claimkit\[onnx\]'"):
        OnnxModel.from_file(onnx_file)


def test_onnx_external_data_anywhere_in_the_model_is_refused(tmp_path, monkeypatch):
    """A tensor kept outside the file as a local function's default attribute: a walk of
    named fields missed it, and onnxruntime read it relative to the working directory."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    monkeypatch.chdir(tmp_path)
    (np.arange(10, dtype=np.float32) + 100).tofile(tmp_path / "w.bin")
    tensor = helper.make_tensor("value", TensorProto.FLOAT, [10], np.zeros(10, np.float32))
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "w.bin"), ("offset", "0"), ("length", "40")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    constant = helper.make_node("Constant", [], ["k"])
    ref = onnx.AttributeProto(name="value", ref_attr_name="c", type=onnx.AttributeProto.TENSOR)
    constant.attribute.append(ref)
    function = helper.make_function("my", "AddC", ["x"], ["y"],
                                    [constant, helper.make_node("Add", ["x", "k"], ["y"])],
                                    [helper.make_opsetid("", 17)], attributes=[])
    function.attribute_proto.append(helper.make_attribute("c", tensor))
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2, 3], keepdims=1),
         helper.make_node("Reshape", ["m", "s"], ["m2"]),
         helper.make_node("AddC", ["m2"], ["y"], domain="my")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        initializer=[numpy_helper.from_array(np.array([-1, 1], np.int64), "s")])
    model = helper.make_model(graph, functions=[function], opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("my", 1)])
    model.ir_version = 8
    with pytest.raises(OracleError, match="external data"):
        OnnxModel.from_bytes(model.SerializeToString(), name="hidden", device="cpu")


def test_an_onnx_graph_that_never_ends_is_stopped(monkeypatch):
    """A Loop of 2^62 trips: the class-count probe never returned, so verify hung."""
    import claimkit.ml.onnx_oracle as onnx_oracle
    from onnx import TensorProto, helper, numpy_helper

    scalar = helper.make_tensor_value_info
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["v_in", "one"], ["v_out"])], "body",
        [scalar("i", TensorProto.INT64, []), scalar("cond_in", TensorProto.BOOL, []),
         scalar("v_in", TensorProto.FLOAT, [])],
        [scalar("cond_out", TensorProto.BOOL, []), scalar("v_out", TensorProto.FLOAT, [])],
        initializer=[numpy_helper.from_array(np.array(1, np.float32), "one")])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["M", "c", "v0"], ["v"], body=body),
         helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("Add", ["f", "v"], ["y"])],
        "g", [scalar("x", TensorProto.FLOAT, ["N", 1, 8, 8])], [scalar("y", TensorProto.FLOAT, ["N", 64])],
        initializer=[numpy_helper.from_array(np.array(2 ** 62, np.int64), "M"),
                     numpy_helper.from_array(np.array(True), "c"),
                     numpy_helper.from_array(np.array(0, np.float32), "v0")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    monkeypatch.setattr(onnx_oracle, "PROBE_SECONDS", 0.3)
    with pytest.raises(OracleError, match="ran longer than 0.3 s; stopped"):
        OnnxModel.from_bytes(model.SerializeToString(), name="loop", device="cpu")


def test_claim_and_verify_an_onnx_suspect(world, onnx_file):
    bundle = world / "onnx.bundle.json"
    result = run("claim", world / "keys", "--receipt", world / "receipt.json", "--registry",
                 world / "reg", "--onnx", onnx_file, "--identity", world / "owner.key",
                 "--open", "20", "--out", bundle)
    assert result.exit_code == 0, result.output
    claimed = ClaimBundle.from_file(bundle)
    assert claimed.statement.subject_name == "released.onnx"
    assert claimed.suspect == onnx_digest(onnx_file.read_bytes())
    assert run("verify", bundle, "--registry-key", world / "reg/log.vkey",
               "--onnx", onnx_file).exit_code == 0
    # The safetensors file is another subject than its ONNX export.
    result = run("verify", bundle, "--registry-key", world / "reg/log.vkey",
                 "--model", world / "released.safetensors")
    assert result.exit_code == 1 and "another model" in result.output


# -- HTTP ------------------------------------------------------------------------------------
def test_endpoint_answers_like_the_local_model(served, local, images):
    endpoint = HttpEndpoint.open(served.url, batch_size=64)
    assert (endpoint.input_shape, endpoint.num_classes, endpoint.max_batch) == ((1, 8, 8), 10, 64)
    assert endpoint.subject == endpoint_digest(served.url) and endpoint.name == served.url
    assert endpoint.labels(images) == local.labels(images)          # 360 images: 6 requests
    assert np.allclose(endpoint.probabilities(images), local.probabilities(images), atol=1e-6)
    assert endpoint.labels(images[:0]) == []


def test_url_normalisation_and_subjects():
    # The worked example of protocol_spec/oracle-http.md.
    url = "HTTP://Models.Example.COM:80/v1/classify?model=a#frag"
    assert normalise_url(url) == "http://models.example.com/v1/classify?model=a"
    assert endpoint_digest(url).hex == "52d0eae3980389882a944d022fcf219334ee01c7b3a83f44dec96ebfdb48184c"
    assert onnx_digest(b"").hex == "0c49620a83ca13a1d5cf0fe55e54b92664485807275fca463f4a697ed8a6a02b"
    assert normalise_url("https://h:443") == "https://h/" and normalise_url("http://h:8080") == "http://h:8080/"
    assert normalise_url("http://[::1]:9/") == "http://[::1]:9/"
    assert endpoint_digest("http://h/a") != endpoint_digest("http://h/b")
    for bad, why in (("ftp://h/", "http"), ("http://u:p@h/", "credentials"), ("http://h /", "ASCII"),
                     ("http://h:99999/", "port"), ("http:///x", "host"), ("", "ASCII"),
                     ("http://exämple.org/", "ASCII"), ("http://[::1/", "IPv6"),
                     ("http://[::1]x/", "malformed host"), ("http://[v1.x]/", "malformed host")):
        with pytest.raises(MalformedInputError, match=why):
            normalise_url(bad)


class Canned(BaseHTTPRequestHandler):
    """Describes itself properly, then answers every POST with ``reply`` (or sleeps)."""

    reply: tuple[int, bytes] = (200, b"")
    location = "http://elsewhere/"
    describe = json.dumps({"type": "claimkit/oracle/v1", "input_shape": [1, 8, 8],
                           "num_classes": 3, "max_batch": 8}).encode()
    sleep = 0.0

    def _answer(self, code, body, headers=()):
        self.send_response(code)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        time.sleep(type(self).sleep)
        self._answer(200, type(self).describe)

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(type(self).sleep)
        code, body = type(self).reply
        self._answer(code, body, [("Location", type(self).location)] if code in (301, 302, 308) else ())

    def log_message(self, *args):
        pass


class Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass                     # a client that timed out and left: expected here


@pytest.fixture(scope="module")
def canned_server():
    server = start(Quiet(("127.0.0.1", 0), Canned))
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def canned(canned_server):
    yield canned_server, f"http://127.0.0.1:{canned_server.server_address[1]}/"
    Canned.reply = (200, b"")


def _answer(rows, **extra):
    return json.dumps({"type": "claimkit/answer/v1", "probabilities": rows, **extra}).encode()


GOOD_ROW = [0.25, 0.25, 0.5]
GARBAGE = [
    ((200, b"<html>not json</html>"), "not valid JSON"),
    ((200, b'{"type": "claimkit/answer/v1", "probabilities": [[NaN, 0.5, 0.5]]}'), "NaN"),
    ((200, _answer([GOOD_ROW, GOOD_ROW])), "2 rows for 1 images"),
    ((200, _answer([[-0.5, 1.0, 0.5]])), r"outside \[0, 1\]"),
    ((200, _answer([[0.2, 0.2, 0.2]])), "row 0 sums to 0.6"),
    ((200, b'{"type": "claimkit/answer/v1", "probabilities": [[1e400, 0, 0]]}'),
     "beyond the double range"),
    ((200, _answer([["0.5", "0.25", "0.25"]])), "expected 3 numbers"),
    ((200, _answer([[0.5, 0.5]])), "expected 3 numbers"),
    ((200, _answer([GOOD_ROW], model="v2")), "unknown field 'model'"),
    ((200, json.dumps({"type": "claimkit/query/v1", "probabilities": [GOOD_ROW]}).encode()), "type"),
    ((200, _answer([GOOD_ROW]) + b" " * 5000), "larger than 4096 bytes"),
    ((500, json.dumps({"type": "claimkit/error/v1", "error": "GPU on fire\nreally"}).encode()),
     "HTTP 500: GPU on fire really$"),
    ((503, b"<html>busy</html>"), "HTTP 503$"),
    ((302, b""), "redirected"),
]


@pytest.mark.parametrize("reply, message", GARBAGE, ids=[m for _, m in GARBAGE])
def test_garbage_answers_are_refused_with_one_line(canned, reply, message):
    _, url = canned
    endpoint = HttpEndpoint.open(url, timeout=5, max_response_bytes=4096)
    Canned.reply = reply
    with pytest.raises(OracleError, match=message) as info:
        endpoint.probabilities(np.zeros((1, 1, 8, 8), dtype=np.uint8))
    assert "\n" not in str(info.value) and url in str(info.value)


@pytest.mark.parametrize("code", [301, 302, 308])
def test_a_malformed_redirect_is_refused_before_urllib_parses_it(canned, monkeypatch, code):
    """urllib parsed the Location before our handler saw it: ValueError, a traceback."""
    _, url = canned
    endpoint = HttpEndpoint.open(url, timeout=5)
    monkeypatch.setattr(Canned, "location", "http://[oops/")
    Canned.reply = (code, b"")
    with pytest.raises(OracleError, match=rf"redirected \(HTTP {code}\) to http://\[oops/"):
        endpoint.probabilities(np.zeros((1, 1, 8, 8), dtype=np.uint8))


def test_a_host_name_the_idna_codec_refuses_is_one_line():
    """getaddrinfo encodes the name with idna, whose UnicodeError killed the lookup thread
    (a traceback) and was then reported as a timeout."""
    with pytest.raises(OracleError, match="cannot connect .*not a host name"):
        HttpEndpoint.open(f"http://{'a' * 64}.example/", timeout=5)      # a label over 63
    with pytest.raises(MalformedInputError, match="no name or IPv4 address"):
        HttpEndpoint.open("http://a..b/", timeout=5)              # refused before any lookup


def test_good_answers_from_another_server_are_accepted(canned):
    _, url = canned
    endpoint = HttpEndpoint.open(url)
    Canned.reply = (200, _answer([GOOD_ROW] * 8))          # max_batch 8: 8 images a request
    assert endpoint.labels(np.zeros((16, 1, 8, 8), dtype=np.uint8)) == [2] * 16
    Canned.reply = (200, _answer([[0, 1, 0]] * 8))            # one-hot rows: integers are numbers
    assert endpoint.labels(np.zeros((8, 1, 8, 8), dtype=np.uint8)) == [1] * 8


def test_endpoint_timeouts_and_unreachable_endpoints(canned, monkeypatch):
    _, url = canned
    endpoint = HttpEndpoint.open(url, timeout=0.3)
    monkeypatch.setattr(Canned, "sleep", 1.0)
    with pytest.raises(OracleError, match=r"no answer within 0.3 s"):
        endpoint.labels(np.zeros((1, 1, 8, 8), dtype=np.uint8))
    with pytest.raises(OracleError, match=r"no answer within 0.3 s"):
        HttpEndpoint.open(url, timeout=0.3)
    monkeypatch.setattr(Canned, "sleep", 0.0)
    monkeypatch.setattr(Canned, "describe", b'{"type": "claimkit/oracle/v1", "input_shape": [1, 8], '
                                            b'"num_classes": 3, "max_batch": 8}')
    with pytest.raises(OracleError, match="input_shape"):
        HttpEndpoint.open(url)
    closed = ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    port = closed.server_address[1]
    closed.server_close()
    with pytest.raises(OracleError, match="cannot connect"):
        HttpEndpoint.open(f"http://127.0.0.1:{port}/")


def test_the_deadline_bounds_the_name_lookup_too(monkeypatch):
    """Before, getaddrinfo ran outside the deadline: a slow resolver held the client as
    long as it liked. A failing lookup is "cannot connect"."""
    import socket
    real = socket.getaddrinfo
    def slow(host, *args, **kwargs):
        if host == "slow.invalid":
            time.sleep(3)
        return real(host, *args, **kwargs)
    monkeypatch.setattr(socket, "getaddrinfo", slow)
    began = time.monotonic()
    with pytest.raises(OracleError, match=r"no answer within 0.3 s"):
        HttpEndpoint.open("http://slow.invalid/", timeout=0.3)
    assert time.monotonic() - began < 1.5
    def failing(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", failing)
    with pytest.raises(OracleError, match="cannot connect .*not known"):
        HttpEndpoint.open("http://nowhere.invalid/", timeout=5)


class Trickler(BaseHTTPRequestHandler):
    """Answers GET the slow way ``mode`` names, for at most ~4 s (so a client without an
    overall deadline is seen to wait that long, not for ever)."""

    protocol_version = "HTTP/1.1"
    mode = ""

    def _drip(self, data: bytes, every: float = 0.1) -> None:
        try:
            for _ in range(int(4 / every)):
                self.wfile.write(data)
                self.wfile.flush()
                time.sleep(every)
        except OSError:
            pass
        self.close_connection = True

    def do_GET(self):
        mode = type(self).mode
        if mode == "continue":                  # "100 Continue" lines, never a final status
            return self._drip(b"HTTP/1.1 100 Continue\r\n\r\n" * 10, every=0.01)
        if mode == "headers":                    # a header line every 0.1 s
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            return self._drip(b"X-Slow: y\r\n")
        if mode == "error-body":                 # an error body, a byte every 0.1 s
            self.send_response(500)
            self.send_header("Connection", "close")
            self.end_headers()
            return self._drip(b"x")
        body = Canned.describe                   # "superscript": Content-Length "²"
        self.send_response(200)
        self.send_header("Content-Length", "\u00b2")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("mode", ["continue", "headers", "error-body"])
def test_one_deadline_bounds_the_whole_exchange(mode, monkeypatch):
    monkeypatch.setattr(Trickler, "mode", mode)
    server = start(Quiet(("127.0.0.1", 0), Trickler))
    try:
        began = time.monotonic()
        with pytest.raises(OracleError, match="no answer within 0.5 s|HTTP 500$"):
            HttpEndpoint.open(f"http://127.0.0.1:{server.server_address[1]}/", timeout=0.5)
        assert time.monotonic() - began < 1.5
    finally:
        server.shutdown()
        server.server_close()


def test_odd_content_lengths_and_timeouts(monkeypatch):
    monkeypatch.setattr(Trickler, "mode", "superscript")
    server = start(Quiet(("127.0.0.1", 0), Trickler))
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:   # "²" passes str.isdigit but is no length: a broken answer (RFC 9112 §6.3)
        with pytest.raises(OracleError, match="broken answer .Content-Length '²'"):
            HttpEndpoint.open(url, timeout=5)
        for timeout in (float("inf"), float("nan"), 0, -1, 1e300):
            with pytest.raises(MalformedInputError, match="timeout"):
                HttpEndpoint.open(url, timeout=timeout)
    finally:
        server.shutdown()
        server.server_close()


def test_the_server_refuses_bad_queries(served):
    host, port = served.server_address[:2]

    def post(body, path="/", headers=None):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("POST", path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, json.loads(data) if data else None

    image = base64.b64encode(bytes(64)).decode()
    ok = {"type": "claimkit/query/v1", "shape": [1, 8, 8], "images": [image]}
    status, body = post(json.dumps(ok))
    assert status == 200 and len(body["probabilities"]) == 1
    for query, message in (({**ok, "shape": [3, 32, 32]}, "this model takes [1, 8, 8]"),
                           ({**ok, "images": ["AAAA"]}, "expected 64 bytes"),
                           ({**ok, "images": [image] * 101}, "more than 100 items"),
                           ({**ok, "images": []}, "empty"),
                           ({**ok, "extra": 1}, "unknown field"),
                           ({**ok, "type": "x"}, "type")):
        status, body = post(json.dumps(query))
        assert status == 400 and body["type"] == "claimkit/error/v1" and message in body["error"]
    assert post(b"{", headers={"Content-Length": "1"})[0] == 400
    assert post(b"{}", headers={"Content-Length": "\u00b2"})[0] == 400   # a digit to isdigit
    assert post(json.dumps(ok), path="/other")[0] == 404
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.putrequest("POST", "/")
    conn.endheaders()
    assert conn.getresponse().status == 411


def test_the_server_bounds_what_a_client_can_make_it_hold(served, local, monkeypatch):
    """Found by a review of claimkit serve as a network service: a body of 64 MiB of
    empty objects took 3.3 GB to parse, a 5,000-digit Content-Length or a failing model
    got no answer (a traceback on the server), one byte a minute held a connection for
    ever, and the log printed a client's terminal escapes."""
    import socket

    import claimkit.ml.endpoint as endpoint

    host, port = served.server_address[:2]

    def post(body, headers=None):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("POST", "/", body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, json.loads(data) if data else None

    image = base64.b64encode(bytes(64)).decode()
    ok = json.dumps({"type": "claimkit/query/v1", "shape": [1, 8, 8], "images": [image] * 100})
    assert post(ok)[0] == 200                              # a full batch fits the cap
    assert served.max_request_bytes < 20_000               # 100 images of 64 bytes, not 64 MiB
    status, body = post(b"x", headers={"Content-Length": str(served.max_request_bytes + 1)})
    assert status == 413 and "100 images" in body["error"]
    status, body = post(b"x", headers={"Content-Length": "0" * 4999 + "5"})
    assert status == 413 and body["type"] == "claimkit/error/v1"
    status, body = post(json.dumps({"x": [{}] * 100}))
    assert status == 400 and "one JSON object with two lists" in body["error"]

    lines = []
    monkeypatch.setattr(served, "log", lines.append)
    monkeypatch.setattr(served.oracle, "probabilities", lambda images: (_ for _ in ()).throw(
        RuntimeError("CUDA out of memory")))
    status, body = post(ok)
    assert status == 500 and body["error"] == "the model failed (RuntimeError)"
    assert any("CUDA out of memory" in line for line in lines)
    monkeypatch.undo()

    lines = []
    monkeypatch.setattr(served, "log", lines.append)
    with socket.create_connection((host, port), timeout=10) as raw:  # the library's own refusal
        raw.sendall(b"GET /\x1b[2J HTTP/1.0\r\n\r\n")
        reply = raw.makefile("rb").read()
    assert b"\x1b" not in "".join(lines).encode() and "\\x1b[2J" in "".join(lines)
    assert b"claimkit/error/v1" in reply and b"404" in reply.split(b"\r\n")[0]
    monkeypatch.setattr(endpoint, "REQUEST_SECONDS", 0.5)
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.sendall(b"POST / HTTP/1.0\r\nContent-Length: 100\r\n\r\n{")   # and no more
        start = time.monotonic()
        assert raw.recv(100) == b""                         # the server hung up
        assert time.monotonic() - start < 9                 # well before the 10 s read timeout
    assert post(ok)[0] == 200                              # and it still serves


def test_the_server_serves_a_bounded_number_of_connections(local, monkeypatch):
    import socket

    import claimkit.ml.endpoint as endpoint

    monkeypatch.setattr(endpoint, "MAX_CONNECTIONS", 1)
    server = start(OracleServer(local, ("127.0.0.1", 0)))
    try:
        host, port = server.server_address[:2]
        with socket.create_connection((host, port), timeout=10):        # holds the one slot
            time.sleep(0.2)
            with socket.create_connection((host, port), timeout=10) as second:
                assert second.recv(100) == b""                           # hung up at once
        time.sleep(0.2)
        assert HttpEndpoint.open(server.url, timeout=5).num_classes == local.num_classes
    finally:
        server.shutdown()
        server.server_close()


def test_the_server_answers_a_malformed_request_line_in_the_protocol(served):
    import socket

    host, port = served.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.sendall(b"GET / one-word-too-many HTTP/1.0\r\n\r\n")
        status, _, rest = raw.makefile("rb").read().partition(b"\r\n")
    assert b" 400 " in status
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["type"] == "claimkit/error/v1"


def test_the_client_refuses_a_content_length_of_thousands_of_digits(canned, monkeypatch):
    _, url = canned

    def answer(self, code, body, headers=()):
        self.send_response(code)
        self.send_header("Content-Length", "0" * 4999 + "5")
        self.end_headers()
        self.wfile.write(body[:5])

    monkeypatch.setattr(Canned, "_answer", answer)
    with pytest.raises(OracleError, match="answer larger than"):
        HttpEndpoint.open(url, timeout=5)


def test_open_oracle_takes_exactly_one_suspect(world, onnx_file):
    model = world / "released.safetensors"
    with pytest.raises(MalformedInputError, match="exactly one"):
        open_oracle()
    with pytest.raises(MalformedInputError, match="--model and --onnx"):
        open_oracle(model=model, onnx=onnx_file)
    with pytest.raises(MalformedInputError, match="--arch applies to --model only"):
        open_oracle(onnx=onnx_file, arch="digits-cnn")
    assert isinstance(open_oracle(model=model, device="cpu"), LocalModel)
    assert isinstance(open_oracle(onnx=onnx_file, device="cpu"), OnnxModel)


def test_cli_timeout_default_is_the_library_one():
    from claimkit.cli.suspect import DEFAULT_TIMEOUT as CLI_DEFAULT
    assert CLI_DEFAULT == DEFAULT_TIMEOUT


# -- the CLI flow through an endpoint -------------------------------------------------------
def test_claim_and_verify_through_an_endpoint(world, served):
    url = served.url
    bundle, verdict = world / "endpoint.bundle.json", world / "endpoint.verdict.json"
    result = run("claim", world / "keys", "--receipt", world / "receipt.json", "--registry",
                 world / "reg", "--endpoint", url, "--identity", world / "owner.key", "--open", "20",
                 "--out", bundle, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["suspect"]["sha256"] == endpoint_digest(url).hex
    claimed = ClaimBundle.from_file(bundle)
    assert claimed.statement.subject_name == url and claimed.suspect == endpoint_digest(url)
    verify = ("verify", bundle, "--registry-key", world / "reg/log.vkey", "--endpoint", url,
              "--sign-verdict", world / "arbiter.key", "--verdict-out", verdict)
    result = run(*verify)
    assert result.exit_code == 0 and "observed by the arbiter" in result.output, result.output
    assert verdict.exists()
    verdict.unlink()
    code = ("import sys\nfrom claimkit.cli import cli\ntry:\n    cli(sys.argv[1:], prog_name='claimkit')\n"
            "except SystemExit as e:\n    print('exit', e.code, 'torch' in sys.modules)")
    alone = subprocess.run([sys.executable, "-c", code, *map(str, verify[:6])],
                           capture_output=True, text=True, timeout=300)
    assert "exit 0 False" in alone.stdout, alone.stdout + alone.stderr   # no torch to re-query

    served.oracle.delay = 1.0        # the same URL, now too slow
    try:
        result = run(*verify, "--timeout", "0.3")
    finally:
        served.oracle.delay = 0.0
    assert result.exit_code == 2 and not verdict.exists()
    assert result.output.strip().count("\n") == 0 and "no answer within 0.3 s" in result.output

    result = run("claim", world / "keys", "--receipt", world / "receipt.json", "--registry",
                 world / "reg", "--identity", world / "owner.key", "--out", world / "none.json")
    assert result.exit_code == 2 and "exactly one of --model" in result.output
    assert not (world / "none.json").exists()
