"""The draw-a-digit server: the standard library's threading HTTP server, which is enough for one person's
page (a framework would add a dependency and nothing this needs).

    GET  /              the page (static/index.html: no CDN, it works offline)
    POST /api/predict   a picture as the body -> {label, probabilities, input (28x28, 0..1), saliency (28x28)}
    the step-through's endpoints (/api/trace, /api/layer, /api/learn, /api/reset, /api/check): steps.py

The picture goes through the very preparation `predict --image` uses (data/images.py). A bad request
gets a 4xx and a JSON {"error": ...}, and the server goes on serving. The model is a training.voting.Ensemble
(one network, or several averaged); a network keeps what its last pass cached (the layers' inputs, masks),
so one lock lets one request use it at a time -- and a picture is decoded before that lock is taken, so
that a large one never makes the other visitors wait.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from ..data.images import prepare_bytes
from ..errors import BPTrainError
from ..training.recognize import recognize
from .steps import RequestError, StepThrough

MAX_BODY = 4_000_000  # a canvas PNG is tens of kB, a phone photo a few MB
MAX_CONNECTIONS = 64  # served at once, a thread each; more are answered 503 at once rather than queued
IDLE_SECONDS = 20  # a connection that sends nothing for this long is closed (slow clients hold a thread)


class DigitServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the listen backlog: a burst of visitors waits rather than being refused

    def __init__(self, address, model, quiet: bool = True):
        if ":" in address[0]:  # an IPv6 address, ::1 or ::
            self.address_family = socket.AF_INET6
        self.connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, Handler)
        self.model, self.lock, self.quiet = model, threading.Lock(), quiet
        self.page = resources.files("bp_train.serve").joinpath("static/index.html").read_bytes()
        self.steps = StepThrough(model)

    def read(self, body: bytes) -> dict:
        prepared = prepare_bytes(body, "the picture")  # outside the lock: decoding may take a while
        with self.lock:
            result = recognize(self.model, [prepared], saliency=True)[0]
        return {key: result[key] for key in ("label", "probabilities", "input", "saliency", "notes")}

    def process_request(self, request, client_address):
        """A thread per connection, up to MAX_CONNECTIONS; beyond, a 503 at once and the connection closed."""
        if not self.connections.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.connections.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()

    def handle_error(self, request, client_address):
        """A client that resets or drops its connection is no error of ours: nothing on the console. Any other
        failure is one line, never a traceback per request."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return
        print(
            f"bp-train serve: a request from {client_address[0]} failed: {type(error).__name__}: {error}"[:300],
            file=sys.stderr,
        )

    def answer(self, path: str, query: dict, body: bytes | None) -> dict:
        """An endpoint's answer: a picture read, or a step-through's (steps.py); RequestError for a bad
        request, BPTrainError for a bad picture (not an image, a blank canvas, a bomb)."""
        if path == "/api/predict":
            return self.read(body)
        if path == "/api/trace":
            if not body:
                raise RequestError(HTTPStatus.BAD_REQUEST, "POST the picture of a digit to trace")
            return self.steps.trace(query, prepare_bytes(body, "the picture"))
        return {
            "/api/layer": self.steps.layer,
            "/api/learn": self.steps.learn,
            "/api/reset": self.steps.reset,
            "/api/check": self.steps.check,
        }[path](query)


STEP_POSTS = ("/api/trace", "/api/learn", "/api/reset", "/api/check")


class Handler(BaseHTTPRequestHandler):
    server: DigitServer
    timeout = IDLE_SECONDS  # on the socket: a read that waits longer ends the connection

    def log_message(self, format, *args):  # one line per request only when asked (--log)
        if not self.server.quiet:
            super().log_message(format, *args)

    def send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":  # HEAD: the headers GET would send, and no body
            self.wfile.write(body)

    def send_json(self, status: int, payload: dict) -> None:
        self.send(status, json.dumps(payload).encode(), "application/json")

    def split(self) -> tuple[str, dict]:
        parts = urlsplit(self.path)
        return parts.path, {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}

    def step(self, path: str, query: dict, body: bytes | None) -> None:
        try:
            self.send_json(HTTPStatus.OK, self.server.answer(path, query, body))
        except RequestError as exc:
            self.send_json(exc.status, {"error": str(exc)})
        except BPTrainError as exc:
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except MemoryError:
            self.send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "not enough memory for this request now"})
        except Exception as exc:  # our bug: the visitor gets an answer, the console one line, and we go on
            self.server.handle_error(None, self.client_address)
            self.send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"the server failed: {type(exc).__name__}"})

    def do_GET(self):
        path, query = self.split()
        if self.path in ("/", "/index.html"):
            self.send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
        elif path == "/api/layer":
            self.step(path, query, None)
        elif path in ("/api/predict", *STEP_POSTS):
            self.send_json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"POST to {path}"})
        else:
            self.send_json(HTTPStatus.NOT_FOUND, {"error": f"no page {self.path[:80]}"})

    do_HEAD = do_GET

    def body_length(self) -> int | None:
        """The one Content-Length, in plain digits; None (after a 4xx answer) for anything a proxy and this
        server could read two ways: two such headers, a chunked body, '1_0' or '+5' (which int() takes)."""
        lengths = [length.strip() for length in self.headers.get_all("Content-Length") or []]
        if self.headers.get("Transfer-Encoding") is not None:
            self.close_connection = True
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": "send the picture with a Content-Length, not chunked"})
            return None
        if len(lengths) != 1 or not (lengths[0].isascii() and lengths[0].isdigit()):
            self.close_connection = True
            self.send_json(HTTPStatus.LENGTH_REQUIRED, {"error": "send the picture with one Content-Length in digits"})
            return None
        return int(lengths[0])

    def do_POST(self):
        path, query = self.split()
        if path not in ("/api/predict", *STEP_POSTS):
            self.send_json(HTTPStatus.NOT_FOUND, {"error": f"no endpoint {self.path[:80]}; POST to /api/predict"})
            return
        if path != "/api/trace" and path in STEP_POSTS and not self.headers.get("Content-Length"):
            if self.headers.get("Transfer-Encoding") is None:  # these take no body, and need no length
                self.step(path, query, None)
                return
        length = self.body_length()
        if length is None:
            return
        if length > MAX_BODY:
            self.close_connection = True  # the body is not read: this connection cannot carry another request
            self.send_json(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                {"error": f"{length:,} bytes; a picture of a digit needs at most {MAX_BODY:,}"},
            )
            return
        body = self.rfile.read(length)
        if path == "/api/predict" and not body:
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": "an empty body: POST the picture itself"})
            return
        self.step(path, query, body)

    def do_PUT(self):
        self.send_json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "POST a picture to /api/predict, GET /api/layer"})

    do_DELETE = do_PATCH = do_PUT


def serve(model, host: str, port: int, announce=print, quiet: bool = True) -> None:
    """Serve until Ctrl-C (KeyboardInterrupt propagates once the socket is closed)."""
    server = DigitServer((host, port), model, quiet)
    shown = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL is bracketed
    announce(f"serving on http://{shown}:{server.server_address[1]}/ (Ctrl-C stops it)")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
