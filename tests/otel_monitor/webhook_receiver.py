"""A real webhook receiver for the alert tests: ``http.server`` on 127.0.0.1 in a thread.

It records every POST (path, headers, raw body, parsed JSON, receipt time) and
answers what a test scripted for that path, in order: a status (with headers, and a
body: ``(status, headers, body)``), or ``HANG`` (hold the request open, never answer, until the receiver closes). Once a
path's script is used up it answers 200.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

HANG = "hang"


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    raw: bytes
    received: float  # time.monotonic()
    received_ns: int  # time.time_ns()

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    posts: list[Post] = field(default_factory=list)
    scripts: dict[str, list] = field(default_factory=dict)
    released: threading.Event = field(default_factory=threading.Event)
    cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def script(self, path: str, *responses: int | tuple[int, dict[str, str]]
               | tuple[int, dict[str, str], bytes] | str) -> None:
        """What ``path`` answers to its next POSTs, in order (then 200)."""
        self.scripts[path] = list(responses)

    def to(self, path: str) -> list[Post]:
        with self.cond:
            return [p for p in self.posts if p.path == path]

    def wait(self, predicate: Callable[[list[Post]], bool], timeout: float = 5.0,
             path: str | None = None) -> list[Post]:
        """Wait until ``predicate(posts)`` holds (posts to ``path`` if given); the posts.
        Fails the test after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                posts = [p for p in self.posts if path is None or p.path == path]
                if predicate(posts):
                    return posts
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"receiver: condition not met in {timeout} s; "
                                         f"got {len(posts)} post(s): "
                                         f"{[p.raw[:200] for p in posts]}")
                self.cond.wait(remaining)

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


def start_receiver() -> Receiver:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # answer at once, as a real webhook would

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            post = Post(self.path, dict(self.headers.items()), raw, time.monotonic(),
                        time.time_ns())
            with receiver.cond:
                receiver.posts.append(post)
                script = receiver.scripts.get(self.path)
                answer = script.pop(0) if script else 200
                receiver.cond.notify_all()
            if answer == HANG:
                receiver.released.wait(30)
                self.close_connection = True
                return
            status, headers, *given = answer if isinstance(answer, tuple) else (answer, {})
            body = given[0] if given else b"ok" if status < 400 else b"no"
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(server)
    threading.Thread(target=server.serve_forever, args=(0.02,), name="webhook-receiver",
                     daemon=True).start()
    return receiver


def closed_port_url(path: str = "/down") -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
