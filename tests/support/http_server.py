"""A real HTTP server on a loopback address, in a thread, serving canned responses."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

Route = Callable[["CannedHandler"], None]


class CannedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CannedServer

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        self.server.requests.append(path)
        self.close_connection = True
        route = self.server.routes.get(path)
        if route is None:
            self.respond(404, b"not found")
        else:
            route(self)

    do_POST = do_GET  # a route reads the body itself (`body()`)

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def respond(
        self,
        status: int,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
        *,
        content_length: int | None = None,
    ) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header(
            "Content-Length", str(len(body) if content_length is None else content_length)
        )
        self.end_headers()
        self.wfile.write(body)

    def stream_chunks(
        self, chunks: Iterable[bytes], headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Send a chunked body; stops quietly when the client hangs up."""
        self.send_response(200)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in chunks:
                if self.server.stopping.is_set():
                    return
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def stall(self, seconds: float = 10) -> None:
        """Hold the connection open without sending, until the server stops."""
        self.wfile.flush()
        self.server.stopping.wait(seconds)

    def log_message(self, format: str, *args: object) -> None:
        pass


class CannedServer(ThreadingHTTPServer):
    """`with CannedServer("127.0.0.1") as server:` serves `server.routes` on a free port.

    `connections` counts accepted TCP connections, so a test can prove none was made.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), CannedHandler)
        self.host = host
        self.port: int = self.server_address[1]
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        self.connections = 0
        self.stopping = threading.Event()
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def verify_request(self, request: object, client_address: object) -> bool:
        self.connections += 1
        return True

    def __enter__(self) -> CannedServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
        self._thread.join()


GEMINI_EMBEDDINGS = "/v1beta/models/text-embedding-004:batchEmbedContents"


@contextlib.contextmanager
def slow_embeddings(
    seconds_per_batch: float, server: Callable[[], CannedServer] = CannedServer
) -> Iterator[dict[str, str]]:
    """A stand-in for Google's embedding API (the Gemini embedder's wire protocol, on a
    loopback server, or the one `server` makes) that answers each batch of up to 100
    texts after `seconds_per_batch`: a job that takes seconds without taking a core, for
    the tests that stop workers mid-job. Yields the settings that point the service at
    it."""

    def answer(handler: CannedHandler) -> None:
        texts = [r["content"]["parts"][0]["text"] for r in json.loads(handler.body())["requests"]]
        handler.server.stopping.wait(seconds_per_batch)
        vectors = [_vector(text) for text in texts]
        body = json.dumps({"embeddings": [{"values": v} for v in vectors]}).encode()
        handler.respond(200, body, [("Content-Type", "application/json")])

    with server() as running:
        running.routes[GEMINI_EMBEDDINGS] = answer
        yield {
            "EMBEDDER": "gemini",
            "GOOGLE_API_KEY": "test-key-for-a-loopback-server",
            "GEMINI_BASE_URL": running.url(),
        }


def _vector(text: str) -> list[float]:
    """768 numbers that depend on the text's words alone: each word adds ±1 at a place
    its digest picks, so a question sharing words with a chunk lies near it (an answer
    can find its sources) and the same text always gets the same vector."""
    values = [0.0] * 768
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        values[int.from_bytes(digest[:4], "big") % 768] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    return [value / norm for value in values]
