"""A small real HTTP server for feed tests (stdlib http.server in a thread), standing in for the
publisher's site: conditional GETs, slow answers, endless bodies and error statuses are real.

Use the ``feed_server`` fixture: ``feed_server.add("/feed.xml", body, etag='"v1"')`` and
``feed_server.url("/feed.xml")``; ``feed_server.requests`` records what arrived.
"""

import contextlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: str = ""
    last_modified: str = ""
    delay: float = 0.0  # seconds before answering
    endless: bool = False  # stream without Content-Length until the client gives up
    headers: dict = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def do_GET(self):
        route = self.server.routes.get(self.path)
        self.server.requests.append((self.path, dict(self.headers)))
        if route is None:
            self.send_error(404)
            return
        if route.delay:
            time.sleep(route.delay)
        if (route.etag and self.headers.get("If-None-Match") == route.etag) or (
            route.last_modified and self.headers.get("If-Modified-Since") == route.last_modified
        ):
            self.send_response(304)
            self.end_headers()
            return
        self.send_response(route.status)
        self.send_header("Content-Type", route.content_type)
        if route.etag:
            self.send_header("ETag", route.etag)
        if route.last_modified:
            self.send_header("Last-Modified", route.last_modified)
        for name, value in route.headers.items():
            self.send_header(name, value)
        if route.endless:
            self.end_headers()
            chunk = b"<item>" + b"x" * 65536 + b"</item>"
            try:
                for _ in range(2000):  # ~130 MB at most, should the client never stop
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(route.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[str, Route]
    requests: list


class FeedServer:
    def __init__(self):
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.routes = {}
        self._server.requests = []
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list:
        return self._server.requests

    def url(self, path: str) -> str:
        return self.base_url + path

    def add(self, path: str, body: bytes | str = b"", **options) -> str:
        if isinstance(body, str):
            body = body.encode()
        self._server.routes[path] = Route(body=body, **options)
        return self.url(path)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def feed_server():
    server = FeedServer()
    yield server
    server.close()
