"""Weights digest and HTTP oracle client and server, written from protocol_spec/*.md alone.

Written from weights.md, oracle-http.md and encoding.md (and vectors/weights.json), not
from claimkit's code (2026-12-07). It imports the standard library and ``rfc8785`` only,
never ``claimkit``: tests/test_spec_oracle_interop.py runs it against claimkit's reader,
client and server. Where the two disagree, the spec is the reference.

* ``weights_digest(data)`` -> hex: weights.md *Input* (every MUST-reject rule) and *Digest*.
* ``normalise_url(url)``, ``endpoint_subject(url)``, ``onnx_subject(data)``:
  oracle-http.md's subject table and *Subjects: the normalised URL*.
* ``Client(url)``: *Description*, *Query*, *Answer*, *Errors*, *Client limits*; never
  follows a redirect. ``client.describe()``, ``client.probabilities(images)``,
  ``client.labels(images)``; every failure raises ``OracleError`` (one line naming the URL).
* ``serve(table, input_shape, num_classes, max_batch)`` -> a running server answering
  from a fixed lookup table (image bytes -> label or probability row).

Guesses where the text is open are marked GUESS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import json
import math
import re
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import accumulate
from typing import Any

import rfc8785

__all__ = ["Malformed", "OracleError", "weights_digest", "normalise_url", "endpoint_subject",
           "onnx_subject", "Client", "serve", "strict_json", "b64encode", "b64decode"]


class Malformed(ValueError):
    """A file or wire object the spec says a reader MUST reject."""


class OracleError(RuntimeError):
    """A failed exchange with an HTTP oracle (oracle-http.md: one line naming the URL)."""


# -- encoding.md ----------------------------------------------------------------------
MAX_SAFE = 2 ** 53 - 1
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


def strict_json(data: bytes, limit: int = 64 * 2 ** 20) -> Any:
    """encoding.md *Strict parsing*: UTF-8, no duplicates, no NaN/Infinity, depth <= 32."""
    if len(data) > limit:
        raise Malformed(f"document of {len(data)} bytes is above its limit of {limit}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Malformed(f"not UTF-8: {e}") from None
    brackets = re.sub(r"[^\[\]{}]", "", _STRING.sub("", text))
    depth = max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)
    if depth > 32:          # GUESS: the outermost object or array is level 1
        raise Malformed(f"nesting of {depth} levels is deeper than 32")

    def pairs(items):
        out = {}
        for k, v in items:
            if k in out:
                raise Malformed(f"duplicate member {k!r}")
            out[k] = v
        return out

    def constant(name):
        raise Malformed(f"the constant {name} is not JSON")

    def integer(digits: str) -> int:     # encoding.md: "-0" is no integer
        if digits == "-0":
            raise Malformed("-0 is no integer")
        return int(digits)

    def utf8(s: str) -> str:
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:       # an escaped lone surrogate: no UTF-8 string
            raise Malformed("a string holds a lone surrogate (not UTF-8)") from None
        return s

    def check(x):
        if isinstance(x, str):
            utf8(x)
        elif isinstance(x, dict):
            for k, v in x.items():
                utf8(k)
                check(v)
        elif isinstance(x, list):
            for v in x:
                check(v)

    try:
        doc = json.loads(text, object_pairs_hook=pairs, parse_constant=constant,
                         parse_int=integer)
    except Malformed:
        raise
    except (ValueError, RecursionError) as e:
        raise Malformed(f"not JSON: {e}") from None
    if "\\u" in text:
        check(doc)
    return doc


def is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def members(obj, name: str, required: set[str]) -> dict:
    if not isinstance(obj, dict):
        raise Malformed(f"{name} is not an object")
    if set(obj) != required:
        extra, missing = sorted(set(obj) - required), sorted(required - set(obj))
        raise Malformed(f"{name}: unknown members {extra}, missing {missing}")
    return obj


def b64encode(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def b64decode(s) -> bytes:
    """encoding.md *Binary values*: standard, padded, canonical base64 only."""
    if not isinstance(s, str) or not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", s) or len(s) % 4:
        raise Malformed("not standard padded base64")
    try:
        b = base64.b64decode(s, validate=True)
    except binascii.Error as e:
        raise Malformed(f"not base64: {e}") from None
    if b64encode(b) != s:
        raise Malformed("non-canonical base64")
    return b


# -- weights.md -----------------------------------------------------------------------
DTYPE_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
               "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
MAX_HEADER = 100_000_000


def read_safetensors(data: bytes) -> dict[str, tuple[str, list[int], bytes]]:
    """weights.md *Input*: name -> (dtype, shape, bytes); raises Malformed."""
    if len(data) < 8:
        raise Malformed("shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER:
        raise Malformed(f"header length {n} above {MAX_HEADER}")
    if 8 + n > len(data):
        raise Malformed("header runs past the end of the file")
    raw = data[8:8 + n]
    if not raw.startswith(b"{"):          # "a UTF-8 JSON header ... that begins with {"
        raise Malformed("header does not begin with {")
    # "trailing spaces allowed": GUESS other JSON whitespace (inside, trailing) is JSON's own
    header = strict_json(raw.rstrip(b" "), limit=MAX_HEADER)
    if not isinstance(header, dict):
        raise Malformed("header is not a JSON object")
    buffer = data[8 + n:]
    tensors = {}
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise Malformed("__metadata__ is not an object of strings")
            continue
        members(entry, f"tensor {name!r}", {"dtype", "shape", "data_offsets"})
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
            raise Malformed(f"tensor {name!r}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(is_int(d) and 0 <= d <= MAX_SAFE for d in shape):
            raise Malformed(f"tensor {name!r}: shape is not a list of integers")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(is_int(o) and 0 <= o <= MAX_SAFE for o in offsets)):
            raise Malformed(f"tensor {name!r}: data_offsets is not [begin, end]")
        begin, end = offsets
        if end < begin:
            raise Malformed(f"tensor {name!r}: end before begin")
        if math.prod(shape) * DTYPE_SIZES[dtype] != end - begin:
            raise Malformed(f"tensor {name!r}: shape and dtype do not fill [begin, end)")
        spans.append((begin, end, name))
        tensors[name] = (dtype, shape, (begin, end))
    at = 0
    for begin, end, name in sorted(spans):
        if begin != at:
            raise Malformed(f"tensor {name!r}: {'hole' if begin > at else 'overlap'} at {at}")
        at = end
    if at != len(buffer):
        raise Malformed(f"tensors end at {at}, the buffer at {len(buffer)}")
    return {k: (d, s, buffer[b:e]) for k, (d, s, (b, e)) in tensors.items()}


def _lp(b: bytes) -> bytes:
    return struct.pack(">Q", len(b)) + b


def weights_digest(data: bytes) -> str:
    """weights.md *Digest*: hex SHA-256 over the tensors sorted by their UTF-8 names."""
    tensors = read_safetensors(data)
    h = hashlib.sha256(b"claimkit/weights/v1\n")
    for name in sorted(tensors, key=lambda k: k.encode("utf-8")):
        dtype, shape, body = tensors[name]
        h.update(_lp(name.encode("utf-8")) + _lp(dtype.encode("utf-8"))
                 + _lp(rfc8785.dumps(shape)) + _lp(body))
    return h.hexdigest()


# -- oracle-http.md: subjects ---------------------------------------------------------
_DEFAULT_PORT = {"http": 80, "https": 443}
_IPV4 = re.compile(r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}")
# *Subjects* 1: a name is labels of letters and digits, '-' and '_' inside a label, an optional
# final dot; a host of digit labels must be an IPv4 address (no leading 0)
_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?)*\.?")


def _ipv6(text: str) -> bool:
    import ipaddress        # stdlib
    try:
        ipaddress.IPv6Address(text)
        return True
    except ValueError:
        return False


def parse_url(url: str) -> tuple[str, str, int, str, str]:
    """-> (scheme, host, port, normalised URL, request target); raises Malformed."""
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise Malformed("URL is empty or longer than 2,048 characters")
    if any(not (0x21 <= ord(c) <= 0x7E) for c in url):
        raise Malformed("URL is not printable ASCII without spaces")
    m = re.fullmatch(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?", url, re.S)
    if not m:
        raise Malformed("URL has no scheme://host")
    scheme, authority, path, query = m.group(1).lower(), m.group(2), m.group(3), m.group(4) or ""
    if scheme not in _DEFAULT_PORT:
        raise Malformed(f"scheme {scheme!r} is not http or https")
    if "@" in authority:
        raise Malformed("URL has a user name or password")
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0 or not _ipv6(authority[1:close]):
            raise Malformed("bad IPv6 host")
        host, rest = authority[:close + 1].lower(), authority[close + 1:]
        connect_host = authority[1:close]
    else:
        host, _, port_text = authority.partition(":")
        rest = ":" + port_text if ":" in authority else ""
        if not (_IPV4.fullmatch(host) or _NAME.fullmatch(host)) or host.replace(".", "").isdigit() \
                and not _IPV4.fullmatch(host):
            raise Malformed(f"bad host {host!r}")
        host = host.lower()
        connect_host = host
    if rest:
        # *Subjects* 1: a port is 1 to 65535 in decimal; an empty port after ':' is refused
        if not re.fullmatch(r":\d{1,5}", rest) or not 1 <= int(rest[1:]) <= 65535:
            raise Malformed(f"bad port {rest!r}")
        port = int(rest[1:])
    else:
        port = _DEFAULT_PORT[scheme]
    path = path or "/"
    shown = host if port == _DEFAULT_PORT[scheme] else f"{host}:{port}"
    return scheme, connect_host, port, f"{scheme}://{shown}{path}{query}", path + query


def normalise_url(url: str) -> str:
    return parse_url(url)[3]


def endpoint_subject(url: str) -> str:
    return hashlib.sha256(b"claimkit/endpoint/v1\n" + normalise_url(url).encode("ascii")).hexdigest()


def onnx_subject(data: bytes) -> str:
    return hashlib.sha256(b"claimkit/onnx/v1\n" + data).hexdigest()


# -- oracle-http.md: the client -------------------------------------------------------
ANSWER_LIMIT = 16 * 2 ** 20
ERROR_READ = 4096
QUERY_LIMIT = 64 * 2 ** 20


class Client:
    def __init__(self, url: str, timeout: float = 30.0, answer_limit: int = ANSWER_LIMIT):
        try:
            self.scheme, self.host, self.port, self.url, self.target = parse_url(url)
        except Malformed as e:
            raise OracleError(f"{url}: {e}") from None
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout)
                and 0 < timeout <= 86400):
            raise OracleError(f"{url}: timeout must be finite, positive, at most one day")
        self.timeout = float(timeout)
        self.answer_limit = answer_limit
        self.description: dict | None = None

    def fail(self, why: str):
        raise OracleError(f"{self.url}: {why}".replace("\n", " "))

    def _exchange(self, method: str, body: bytes | None) -> Any:
        deadline = time.monotonic() + self.timeout

        def left() -> float:
            t = deadline - time.monotonic()
            if t <= 0:
                raise socket.timeout("deadline passed")
            return t
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=left())
        expired = threading.Event()
        watchdog = None
        try:
            headers = {"Accept": "application/json"}
            if body is not None:
                headers["Content-Type"] = "application/json"
                headers["Content-Length"] = str(len(body))
            conn.connect()      # GUESS: the name lookup is bounded by the socket timeout only
            sock = conn.sock

            def expire():       # *Client limits*: one deadline for the whole exchange
                expired.set()
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            watchdog = threading.Timer(left(), expire)
            watchdog.daemon = True
            watchdog.start()
            conn.request(method, self.target, body=body, headers=headers)
            sock.settimeout(left())
            resp = conn.getresponse()
            status = resp.status
            length = resp.getheader("Content-Length")
            cap = self.answer_limit if status == 200 else ERROR_READ
            if status == 200 and length is not None:
                if not length.isdigit():    # *Errors*: one decimal number (RFC 9112 §6.3)
                    self.fail(f"answer with an invalid Content-Length {length[:40]!r}")
                if int(length) > cap:
                    self.fail(f"answer of Content-Length {length} is above {cap} bytes")
            chunks, got = [], 0
            while got <= cap:
                t = left()      # the whole exchange has one deadline
                try:
                    sock.settimeout(t)
                except OSError:     # the response owns the socket now; its last timeout holds
                    pass
                chunk = resp.read(min(65536, cap + 1 - got))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
            data = b"".join(chunks)
            if expired.is_set():
                raise socket.timeout("deadline passed")
            if status != 200:
                why = f"HTTP {status}"
                if 300 <= status < 400:
                    why += " (a redirect, not followed)"
                try:            # quoted only when the body is exactly that object
                    doc = strict_json(data[:ERROR_READ])
                    members(doc, "error", {"type", "error"})
                    if doc["type"] == "claimkit/error/v1" and isinstance(doc["error"], str):
                        why += f": {doc['error']}"
                except Malformed:
                    pass
                self.fail(why)
            if got > cap:
                self.fail(f"answer above {cap} bytes")
            # GUESS: the answer's Content-Type is not checked (the spec names none for answers)
            try:
                return strict_json(data)
            except Malformed as e:
                self.fail(f"answer: {e}")
        except OracleError:
            raise
        except (OSError, http.client.HTTPException) as e:
            if expired.is_set() or isinstance(e, TimeoutError):
                self.fail(f"no answer within {self.timeout:g} s")
            self.fail(f"{type(e).__name__}: {e}")
        finally:
            if watchdog is not None:
                watchdog.cancel()
            conn.close()

    def describe(self) -> dict:
        doc = self._exchange("GET", None)
        try:
            members(doc, "description", {"type", "input_shape", "num_classes", "max_batch"})
            if doc["type"] != "claimkit/oracle/v1":
                raise Malformed(f"type {doc['type']!r}")
            shape = doc["input_shape"]
            if (not isinstance(shape, list) or len(shape) != 3
                    or not all(is_int(d) and 1 <= d <= 4096 for d in shape)
                    or math.prod(shape) > 2 ** 24):
                raise Malformed("input_shape is not [C, H, W] within [1, 4096], C·H·W ≤ 2^24")
            if not (is_int(doc["num_classes"]) and 2 <= doc["num_classes"] <= 100_000):
                raise Malformed("num_classes not an integer within [2, 100000]")
            if not (is_int(doc["max_batch"]) and 1 <= doc["max_batch"] <= 4096):
                raise Malformed("max_batch not an integer within [1, 4096]")
        except Malformed as e:
            self.fail(f"description: {e}")
        self.description = doc
        return doc

    def batch_size(self) -> int:
        d = self.description or self.describe()
        rows = min(256, d["max_batch"])
        by_request = (QUERY_LIMIT - 1024) // (4 * ((math.prod(d["input_shape"]) + 2) // 3) + 4)
        return max(1, min(rows, self.answer_limit // (d["num_classes"] * 32), by_request))

    def probabilities(self, images: list[bytes]) -> list[list[float]]:
        d = self.description or self.describe()
        size = math.prod(d["input_shape"])
        for i, im in enumerate(images):
            if len(im) != size:
                self.fail(f"image {i} has {len(im)} bytes, not C·H·W = {size}")
        out = []
        step = self.batch_size()
        for at in range(0, len(images), step):
            out += self._query(images[at:at + step], d)
        return out

    def _query(self, images: list[bytes], d: dict) -> list[list[float]]:
        body = json.dumps({"type": "claimkit/query/v1", "shape": d["input_shape"],
                           "images": [b64encode(im) for im in images]},
                          separators=(",", ":")).encode("ascii")
        if len(body) > QUERY_LIMIT:
            self.fail("query above 64 MiB")
        doc = self._exchange("POST", body)
        k = d["num_classes"]
        try:
            members(doc, "answer", {"type", "probabilities"})
            if doc["type"] != "claimkit/answer/v1":
                raise Malformed(f"type {doc['type']!r}")
            rows = doc["probabilities"]
            if not isinstance(rows, list) or len(rows) != len(images):
                raise Malformed(f"not {len(images)} rows")
            for i, row in enumerate(rows):
                if not isinstance(row, list) or len(row) != k:
                    raise Malformed(f"row {i} is not {k} numbers")
                if not all(is_number(p) and math.isfinite(p) and 0 <= p <= 1 + 1e-3 for p in row):
                    raise Malformed(f"row {i} has a value that is not a finite number in [0, 1+1e-3]")
                if abs(math.fsum(row) - 1) > 1e-3:
                    raise Malformed(f"row {i} does not sum to 1 within 1e-3")
        except Malformed as e:
            self.fail(f"answer: {e}")
        return [[float(p) for p in row] for row in rows]

    def labels(self, images: list[bytes]) -> list[int]:
        return [max(range(len(r)), key=lambda j: (r[j], -j)) for r in self.probabilities(images)]


# -- oracle-http.md: a server (fixed lookup table) ------------------------------------
def serve(table: dict[bytes, Any], input_shape, num_classes: int, max_batch: int = 256,
          default: Any = 0, host: str = "127.0.0.1", path: str = "/"):
    """Start a server answering from ``table`` (image bytes -> label or row); returns it.

    ``server.url`` is its URL; ``server.shutdown(); server.server_close()`` stops it.
    """
    size = math.prod(input_shape)
    # "each its base64 and 4 bytes more, for its quotes and a ', ' separator"
    limit = max_batch * (4 * ((size + 2) // 3) + 4) + 4096

    def row(v):
        if is_int(v):
            return [1.0 if j == v else 0.0 for j in range(num_classes)]
        return [float(p) for p in v]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 60        # per socket operation (the spec bounds the whole query to 60 s)

        def log_message(self, *a):
            pass

        def send(self, status: int, doc: dict):
            body = json.dumps(doc, separators=(",", ":")).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def send_error(self, code, message=None, explain=None):
            self.send(code, {"type": "claimkit/error/v1", "error": str(message or code)})

        def do_GET(self):
            if self.path != path:
                return self.send_error(404, "no such path")
            self.send(200, {"type": "claimkit/oracle/v1", "input_shape": list(input_shape),
                            "num_classes": num_classes, "max_batch": max_batch})

        def do_POST(self):
            if self.path != path:
                return self.send_error(404, "no such path")
            length = self.headers.get("Content-Length")
            if length is None:
                return self.send_error(411, "Content-Length required")
            if not length.isdigit():
                return self.send_error(400, "bad Content-Length")
            if int(length) > limit:
                left = min(int(length), QUERY_LIMIT)    # read what a client may send, so that
                while left > 0:                         # closing does not reset the answer away
                    chunk = self.rfile.read(min(left, 65536))
                    if not chunk:
                        break
                    left -= len(chunk)
                return self.send_error(413, "query too large")
            data = self.rfile.read(int(length))
            brackets = re.sub(r"[^\[\]{}]", "", _STRING.sub("", data.decode("utf-8", "replace")))
            if sum(c in "[{" for c in brackets) > 8:
                return self.send_error(400, "more than eight objects and arrays")
            try:
                doc = members(strict_json(data), "query", {"type", "shape", "images"})
                if doc["type"] != "claimkit/query/v1":
                    raise Malformed("type")
                if doc["shape"] != list(input_shape) or not all(is_int(x) for x in doc["shape"]):
                    raise Malformed("shape is not the input_shape")
                ims = doc["images"]
                if not isinstance(ims, list) or not 1 <= len(ims) <= max_batch:
                    raise Malformed(f"images is not 1 to {max_batch} strings")
                ims = [b64decode(s) for s in ims]
                if any(len(b) != size for b in ims):
                    raise Malformed(f"an image is not {size} bytes")
            except Malformed as e:
                return self.send_error(400, str(e))
            self.send(200, {"type": "claimkit/answer/v1",
                            "probabilities": [row(table.get(b, default)) for b in ims]})

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass                    # a client that left

    server = Server((host, 0), Handler)
    server.url = f"http://{host}:{server.server_address[1]}{path}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
