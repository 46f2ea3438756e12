"""A remote model behind claimkit's JSON protocol (protocol_spec/oracle-http.md).

:class:`HttpEndpoint` is the client an owner or arbiter queries; :class:`OracleServer`
(``claimkit serve``) answers the protocol for any oracle. See :mod:`claimkit.ml.oracle`.
"""

from __future__ import annotations

import functools
import http.client
import io
import json
import math
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..errors import MalformedInputError, OracleError
from ..wire import (
    Digest,
    Fields,
    b64decode,
    b64encode,
    load_json,
    sha256,
)

if TYPE_CHECKING:

    from ..schemes.base import Oracle
from .oracle_checks import (
    _NUMBER_CHARS,
    ANSWER_TYPE,
    DEFAULT_BATCH,
    DEFAULT_MAX_RESPONSE,
    DEFAULT_TIMEOUT,
    DESCRIBE_TYPE,
    ENDPOINT_DOMAIN,
    ERROR_TYPE,
    MAX_BATCH,
    MAX_CLASSES,
    MAX_DIM,
    MAX_IMAGE_BYTES,
    MAX_REQUEST_BYTES,
    MAX_TIMEOUT,
    QUERY_TYPE,
    _check_images,
    _one_line,
    _oracle_errors,
    check_probabilities,
)

# -- an HTTP endpoint (protocol_spec/oracle-http.md) -------------------------------------
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_url(url: str) -> str:
    """The canonical form of an endpoint URL (protocol_spec/oracle-http.md §Subjects).

    Scheme and host lower-cased, the default port dropped, an empty path made ``/``, the
    fragment dropped; credentials refused (the URL is published in the claim), and so
    is anything outside printable ASCII (give international host names in punycode).
    """
    if not isinstance(url, str) or not url or len(url) > 2048 \
            or not all(0x21 <= ord(c) <= 0x7e for c in url):
        raise MalformedInputError(f"endpoint URL {_one_line(repr(url))}: expected printable "
                                  "ASCII without spaces, at most 2048 characters")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as e:             # e.g. an unclosed "[" of an IPv6 host
        raise MalformedInputError(f"endpoint URL {url}: {_one_line(e)}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise MalformedInputError(f"endpoint URL {url}: must start with http:// or https://")
    if "@" in parts.netloc:
        raise MalformedInputError(f"endpoint URL {url}: must not carry credentials "
                                  "(the claim publishes it)")
    host = parts.hostname
    try:
        port = parts.port
    except ValueError:
        raise MalformedInputError(f"endpoint URL {url}: bad port") from None
    if port == 0 or parts.netloc.endswith(":"):
        raise MalformedInputError(f"endpoint URL {url}: bad port (1-65535)")
    if not host:
        raise MalformedInputError(f"endpoint URL {url}: no host")
    if ":" not in host and not _is_host(host):
        raise MalformedInputError(f"endpoint URL {url}: the host is no name or IPv4 address")
    netloc = f"[{host}]" if ":" in host else host
    # urlsplit drops what follows "]" ("[::1]x") and unbrackets what is no IPv6 address
    # ("[v1.x]"): the URL queried would not be the one written, so refuse such hosts.
    given = parts.netloc.lower()
    if given != netloc and not given.startswith(netloc + ":"):
        raise MalformedInputError(f"endpoint URL {url}: malformed host")
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    # urlunsplit drops an empty query's "?": kept, as the spec keeps the query byte for byte
    query = "?" + parts.query if "?" in url.split("#", 1)[0] else ""
    return f"{scheme}://{netloc}{parts.path or '/'}{query}"


_LABEL = re.compile(r"[a-z0-9]([a-z0-9_-]*[a-z0-9])?")
_OCTET = re.compile(r"0|[1-9][0-9]{0,2}")


def _is_host(host: str) -> bool:
    """oracle-http.md §Subjects: a name (labels of letters and digits, "-" and "_" inside
    them, an optional final dot), or, when every label is a number, an IPv4 address of
    four octets written without leading zeros ("999.1.1.1" and "1.2.3" are neither)."""
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if all(label.isdigit() for label in labels):
        return len(labels) == 4 and all(_OCTET.fullmatch(x) and int(x) < 256 for x in labels)
    return all(_LABEL.fullmatch(label) for label in labels)


def endpoint_digest(url: str) -> Digest:
    """An endpoint's subject: SHA-256("claimkit/endpoint/v1\\n" || normalised URL)."""
    return Digest(sha256(ENDPOINT_DOMAIN + normalise_url(url).encode("ascii")))


def _shape(value: Any, where: str) -> tuple[int, int, int]:
    if not isinstance(value, list) or len(value) != 3 or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 < d <= MAX_DIM for d in value):
        raise MalformedInputError(f"{where}: expected [C, H, W], each within [1, {MAX_DIM}]")
    if math.prod(value) > MAX_IMAGE_BYTES:
        raise MalformedInputError(f"{where}: images larger than {MAX_IMAGE_BYTES} bytes")
    return (value[0], value[1], value[2])


def parse_description(obj: Any, where: str) -> tuple[tuple[int, int, int], int, int]:
    """A GET answer → (input shape, classes, max images per request)."""
    with _oracle_errors():
        f = Fields(obj, where)
        f.str("type", choices=(DESCRIBE_TYPE,))
        shape = _shape(f.raw("input_shape"), f.path("input_shape"))
        classes = f.int("num_classes", lo=2, hi=MAX_CLASSES)
        max_batch = f.int("max_batch", lo=1, hi=MAX_BATCH)
        f.done()
    return shape, classes, max_batch


def encode_query(images: np.ndarray) -> bytes:
    return json.dumps({"type": QUERY_TYPE, "shape": list(images.shape[1:]),
                       "images": [b64encode(im.tobytes()) for im in images]}).encode()


def parse_query(obj: Any, shape: tuple[int, int, int], max_batch: int) -> np.ndarray:
    """A POST body → uint8 images (N, C, H, W); the server's side of the protocol."""
    f = Fields(obj, "query")
    f.str("type", choices=(QUERY_TYPE,))
    given = _shape(f.raw("shape"), "query.shape")
    if given != tuple(shape):
        raise MalformedInputError(f"query.shape: {list(given)}, but this model takes {list(shape)}")
    images = f.list("images", max_items=max_batch)
    f.done()
    if not images:
        raise MalformedInputError("query.images: empty")
    size = math.prod(shape)
    raw = bytearray().join(b64decode(v, field=f"query.images[{i}]", size=size)
                           for i, v in enumerate(images))
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(images), *shape)


def parse_answer(obj: Any, n: int, classes: int, where: str) -> np.ndarray:
    """A POST answer → float64 (n, classes), every row checked to be a probability vector."""
    with _oracle_errors():
        f = Fields(obj, where)
        f.str("type", choices=(ANSWER_TYPE,))
        rows = f.list("probabilities", max_items=MAX_BATCH)
        f.done()
    if len(rows) != n:
        raise OracleError(f"{where}.probabilities: {len(rows)} rows for {n} images")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != classes \
                or not all(type(v) in (int, float) for v in row):
            raise OracleError(f"{where}.probabilities[{i}]: expected {classes} numbers")
    try:
        p = np.array(rows, dtype=np.float64).reshape(n, classes)
    except OverflowError:
        raise OracleError(f"{where}.probabilities: a number out of range") from None
    return check_probabilities(p, f"{where}.probabilities")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The claim names one URL; an answer from another one is not the suspect's."""

    def http_error_302(self, req: Any, fp: Any, code: int, msg: str, headers: Any) -> None:
        """Refused before urllib parses the Location (a malformed one, such as
        ``http://[oops/``, raised ValueError there)."""
        fp.close()
        raise OracleError(f"{req.full_url}: redirected (HTTP {code}) to "
                          f"{_one_line(str(headers.get('Location', '')))}; query the URL that answers")

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _time_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the deadline passed")
    return left


class _TimedReader(io.RawIOBase):
    """The receiving side of a :class:`_TimedSocket`: each read waits only the time left."""

    def __init__(self, owner: _TimedSocket) -> None:
        super().__init__()
        self._owner = owner
        self._raw = owner.sock.makefile("rb", buffering=0)   # keeps the socket open till closed

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._owner.arm()
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _TimedSocket:
    """A connected socket whose every send and receive may take only the time left before
    the request's deadline. A per-operation timeout is not enough: a server that trickles
    its answer (endless ``100 Continue`` lines, headers, an error body, a byte at a time)
    would hold the client for one timeout per byte."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline = sock, deadline

    def arm(self) -> None:
        self.sock.settimeout(_time_left(self.deadline))

    def sendall(self, data: Any) -> None:
        self.arm()
        self.sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_TimedReader(self))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def _resolve(host: str, port: int, deadline: float) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` within the deadline. The lookup itself takes no timeout (a slow
    resolver can hold it for tens of seconds), so it runs in a daemon thread that is left
    behind, harmless, if the deadline passes first."""
    found: list[Any] = []
    lookup = threading.Thread(daemon=True, target=lambda: found.append(_lookup(host, port)))
    lookup.start()
    lookup.join(_time_left(deadline))
    if not found:
        raise TimeoutError("the name lookup did not finish in time")
    if isinstance(found[0], OSError):
        raise found[0]
    return found[0]


def _lookup(host: str, port: int) -> list[tuple[Any, ...]] | OSError:
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        return e
    except UnicodeError as e:        # the idna codec: an empty label (a..b), one over 63 bytes
        return OSError(f"not a host name ({e})")


class _TimedConnection(http.client.HTTPConnection):
    """An HTTP connection whose name lookup, connect, status line, headers and body share
    one deadline."""

    def __init__(self, *args: Any, deadline: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline
        self._create_connection = self._connect_within_deadline

    def _connect_within_deadline(self, address: tuple[str, int], timeout: Any = None,
                                 source_address: Any = None) -> socket.socket:
        """``socket.create_connection`` with the lookup bounded too: each address the
        name resolves to is tried in turn, in the time left."""
        error: OSError = OSError(f"{address[0]} resolves to no address")
        for family, kind, proto, _, sockaddr in _resolve(*address, self.deadline):
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(_time_left(self.deadline))
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as e:
                sock.close()
                if isinstance(e, TimeoutError):
                    raise
                error = e
        raise error

    def connect(self) -> None:
        self.timeout = _time_left(self.deadline)     # TCP connect and any TLS handshake
        super().connect()
        self.sock = _TimedSocket(self.sock, self.deadline)  # type: ignore[assignment]


class _TimedSecureConnection(_TimedConnection, http.client.HTTPSConnection):
    pass


class _TimedHTTP(urllib.request.HTTPHandler):
    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: Any) -> Any:
        return self.do_open(functools.partial(_TimedConnection, deadline=self.deadline), req)


class _TimedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: Any) -> Any:
        return self.do_open(functools.partial(_TimedSecureConnection, deadline=self.deadline),
                            req)


def _exchange(url: str, body: bytes | None, *, timeout: float, max_bytes: int) -> Any:
    """One GET (``body`` None) or POST; the parsed JSON answer, or an OracleError.

    ``timeout`` bounds the whole exchange — name lookup, connect, request, status line,
    headers and body, an error body included — as one deadline (:class:`_TimedSocket`).
    """
    headers = {"Accept": "application/json", "User-Agent": f"claimkit/{__version__}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, headers=headers,
                                     method="GET" if body is None else "POST")
    late = OracleError(f"{url}: no answer within {timeout:g} s (the timeout; raise it with --timeout)")
    deadline = time.monotonic() + timeout
    opener = urllib.request.build_opener(_NoRedirect, _TimedHTTP(deadline), _TimedHTTPS(deadline))
    try:
        with opener.open(request, timeout=timeout) as response:
            if response.status != 200:               # a 2xx that is not the protocol's
                raise OracleError(f"{url}: HTTP {response.status} (the protocol answers 200)")
            try:
                length = _content_length(response.headers)
            except ValueError as e:
                raise OracleError(f"{url}: broken answer ({e})") from None
            if length is not None and length > max_bytes:
                raise OracleError(f"{url}: answer larger than {max_bytes} bytes")
            data = bytearray()
            while chunk := response.read1(65536):
                data += chunk
                if len(data) > max_bytes:
                    raise OracleError(f"{url}: answer larger than {max_bytes} bytes")
    except urllib.error.HTTPError as e:
        raise OracleError(f"{url}: HTTP {e.code}{_server_error(e)}") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError):
            raise late from None
        raise OracleError(f"{url}: cannot connect ({_one_line(e.reason)})") from None
    except TimeoutError:
        raise late from None
    except (OSError, http.client.HTTPException) as e:
        raise OracleError(f"{url}: broken answer ({_one_line(repr(e))})") from None
    with _oracle_errors():
        return load_json(bytes(data), what=f"{url}: answer", max_bytes=max_bytes)


def _content_length(headers: Any) -> int | None:
    """The length a message's headers declare, None when they declare none; a ValueError
    when it is not one decimal number (RFC 9112 §6.3: "²" is a digit to isdigit, and two
    headers are no length). One of more than 19 digits is 2^64 (int() stops at 4,300)."""
    declared = headers.get_all("Content-Length") or []
    if not declared:
        return None
    value = declared[0]
    if len(declared) > 1 or not (value.isascii() and value.isdigit()):
        raise ValueError(f"Content-Length {', '.join(declared)!r}")
    return 1 << 64 if len(value) > 19 else int(value)


def _server_error(e: urllib.error.HTTPError) -> str:
    """The protocol's error message, when the server sent one (the first 4 KiB, read
    within the request's deadline)."""
    try:
        obj = json.loads(e.read(4096))
    except (ValueError, RecursionError, OSError, http.client.HTTPException):
        return ""                      # an error page: the status line says enough
    message = obj.get("error") if isinstance(obj, dict) and set(obj) == {"type", "error"} \
        and obj["type"] == ERROR_TYPE else None
    return f": {_one_line(message)}" if isinstance(message, str) else ""


@dataclass
class HttpEndpoint:
    """A remote model answering protocol_spec/oracle-http.md at ``url`` (normalised)."""

    url: str
    input_shape: tuple[int, int, int]
    num_classes: int
    max_batch: int
    timeout: float = DEFAULT_TIMEOUT
    max_response_bytes: int = DEFAULT_MAX_RESPONSE

    @classmethod
    def open(cls, url: str, *, timeout: float = DEFAULT_TIMEOUT, batch_size: int = DEFAULT_BATCH,
             max_response_bytes: int = DEFAULT_MAX_RESPONSE) -> HttpEndpoint:
        """Normalise ``url`` and ask the endpoint what it takes (a GET), before any query:
        an endpoint that is down or not a claimkit oracle is reported before a claim is
        announced."""
        if not 0 < timeout <= MAX_TIMEOUT or not 1 <= batch_size <= MAX_BATCH \
                or max_response_bytes < 1024:
            raise MalformedInputError(f"endpoint: timeout within (0, {MAX_TIMEOUT:g}] s, batch "
                                      f"size within [1, {MAX_BATCH}], response cap ≥ 1024 bytes")
        norm = normalise_url(url)
        described = _exchange(norm, None, timeout=timeout, max_bytes=max_response_bytes)
        shape, classes, max_batch = parse_description(described, f"{norm}: description")
        return cls(norm, shape, classes, min(batch_size, max_batch), timeout, max_response_bytes)

    @property
    def subject(self) -> Digest:
        return endpoint_digest(self.url)

    @property
    def name(self) -> str:
        return self.url

    @property
    def per_request(self) -> int:
        """Images per request: the batch size, fewer when the answer or the request would
        not fit the byte limits."""
        size = math.prod(self.input_shape)
        by_answer = self.max_response_bytes // (self.num_classes * _NUMBER_CHARS + 16)
        by_request = (MAX_REQUEST_BYTES - 1024) // (4 * ((size + 2) // 3) + 4)
        return max(1, min(self.max_batch, by_answer, by_request))

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        images = _check_images(images, self.input_shape)
        step = self.per_request
        rows = [np.zeros((0, self.num_classes))]
        for i in range(0, len(images), step):
            chunk = images[i:i + step]
            answer = _exchange(self.url, encode_query(chunk), timeout=self.timeout,
                               max_bytes=self.max_response_bytes)
            rows.append(parse_answer(answer, len(chunk), self.num_classes, f"{self.url}: answer"))
        return np.concatenate(rows)

    def labels(self, images: np.ndarray) -> list[int]:
        """The most probable class of each image (the lowest index on a tie)."""
        return [int(v) for v in self.probabilities(images).argmax(axis=1)]


# A client has REQUEST_SECONDS to send its whole request, headers and body (``timeout``
# bounds each read only: one byte a minute held a connection for ever); the server
# serves at most MAX_CONNECTIONS at once, and refuses the others.
REQUEST_SECONDS = 60.0
MAX_CONNECTIONS = 64
_LOG_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}   # no terminal escapes in logs


class _Handler(BaseHTTPRequestHandler):
    server: OracleServer
    server_version = f"claimkit/{__version__}"
    sys_version = ""  # the Server header names claimkit, not the Python build
    timeout = 60      # seconds one read may wait

    def setup(self) -> None:
        super().setup()
        self._deadline = threading.Timer(REQUEST_SECONDS, self._hang_up)
        self._deadline.daemon = True
        self._deadline.start()

    def _hang_up(self) -> None:
        """The request took too long to arrive: the blocked read ends (EOF) and so does
        the handler."""
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def finish(self) -> None:
        self._deadline.cancel()
        super().finish()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals (a bad request line, 414, 431, 501) as the
        protocol's error document rather than an HTML page."""
        if getattr(self, "command", None) == "HEAD" or code < 200 or code in (204, 304):
            return super().send_error(code, message, explain)
        self.close_connection = True
        short = self.responses.get(code, ("error",))[0]
        self._refuse(code, _one_line(message or short))

    def _send(self, code: int, obj: dict[str, Any]) -> None:
        data = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, code: int, message: str) -> None:
        self._send(code, {"type": ERROR_TYPE, "error": message})

    def do_GET(self) -> None:
        self._deadline.cancel()                     # the request is in
        if self.path != "/":
            return self._refuse(404, "this oracle answers at /")
        oracle = self.server.oracle
        self._send(200, {"type": DESCRIBE_TYPE, "input_shape": list(oracle.input_shape),
                         "num_classes": oracle.num_classes, "max_batch": self.server.max_batch})

    def do_POST(self) -> None:
        if self.path != "/":
            return self._refuse(404, "this oracle answers at /")
        try:
            length = _content_length(self.headers)
        except ValueError:
            return self._refuse(400, "Content-Length must be one decimal number")
        if length is None:
            return self._refuse(411, "Content-Length required")
        limit = self.server.max_request_bytes
        if length > limit:
            return self._refuse(413, f"queries to this oracle are at most {limit} bytes "
                                     f"({self.server.max_batch} images)")
        oracle = self.server.oracle
        try:
            body = self.rfile.read(length)
        except (TimeoutError, ConnectionError):
            self.close_connection = True
            return None
        self._deadline.cancel()
        if len(body) != length:                      # the client, or the deadline, hung up
            self.close_connection = True
            return None
        # A query is one object holding two lists. Any more containers and the parse
        # costs ~50 bytes of memory per body byte ({"x": [{}, {}, …]}), so refuse first.
        if body.count(b"{") + body.count(b"[") > 8:
            return self._refuse(400, "query: a query is one JSON object with two lists")
        try:
            images = parse_query(load_json(body, what="query"), oracle.input_shape,
                                 self.server.max_batch)
        except MalformedInputError as e:
            return self._refuse(400, str(e))
        try:
            with self.server.lock:
                probabilities = check_probabilities(oracle.probabilities(images), "the model")
        except MalformedInputError as e:
            return self._refuse(500, str(e))
        except Exception as e:  # noqa: BLE001 — the model's own failure (out of GPU memory):
            self.log_message("the model failed: %s", _one_line(e))   # an answer, not a hang-up
            return self._refuse(500, f"the model failed ({type(e).__name__})")
        self._send(200, {"type": ANSWER_TYPE, "probabilities": probabilities.tolist()})

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log is not None:
            self.server.log(f"{self.address_string()} {format % args}".translate(_LOG_ESCAPES))


class OracleServer(ThreadingHTTPServer):
    """Answers protocol_spec/oracle-http.md at ``/`` for any oracle (``claimkit serve``).

    Queries run one at a time (a lock around the model); ``log`` receives one line per
    request, or nothing when None::

        server = OracleServer(LocalModel.from_file("m.safetensors"), ("127.0.0.1", 0))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        HttpEndpoint.open(server.url).labels(images)
    """

    daemon_threads = True

    def __init__(self, oracle: Oracle, address: tuple[str, int], *,
                 max_batch: int = DEFAULT_BATCH, log: Callable[[str], None] | None = None) -> None:
        if not 1 <= max_batch <= MAX_BATCH:
            raise MalformedInputError(f"max batch must be within [1, {MAX_BATCH}]")
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.oracle = oracle
        self.max_batch = max_batch
        # A query of max_batch images, base64 in quotes with a separator each, and the rest.
        size = math.prod(oracle.input_shape)
        self.max_request_bytes = min(MAX_REQUEST_BYTES, max_batch * (4 * ((size + 2) // 3) + 4) + 4096)
        self.log = log
        self.lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return normalise_url(f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/")

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread per connection, at most MAX_CONNECTIONS of them: beyond, hang up."""
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (its own timeout) is one log line, not a traceback."""
        error = sys.exc_info()[1]
        if not isinstance(error, (ConnectionError, TimeoutError)):
            return super().handle_error(request, client_address)
        if self.log is not None:
            self.log(f"{client_address[0]} gone: {_one_line(error)}")
        return None
