"""A minimal OpenAI-compatible chat server on loopback, for plumbing tests of the LLM client.

It answers from a Python function of the request body and records every request, so tests can
check what was sent (response_format per server flavour) and how often (cache, retries).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubServer:
    """``with StubServer(answer) as s: s.url`` -- answer(body) -> (status, content string)."""

    def __init__(self, answer: Callable[[dict], tuple[int, str]], delay_s: float = 0.0):
        self.answer = answer
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    stub.requests.append(body)
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    time.sleep(delay_s)  # a server busy generating
                    status, content = stub.answer(body)
                finally:
                    with lock:
                        stub.in_flight -= 1
                payload = {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", ""),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                }
                data = json.dumps(payload if status == 200 else {"error": "boom"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> StubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class CountingProxy:
    """Forwards requests to a real server and counts the chat requests. ``on_request(n)`` runs
    before the n-th one is forwarded (a test can kill the server there); when the server
    cannot be reached the proxy drops the connection, as a dead server would."""

    def __init__(self, target: str):
        import urllib.request

        self.target = target.rstrip("/")
        self.count = 0
        self.on_request = None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if method == "POST":
                    proxy.count += 1
                    if proxy.on_request is not None:
                        proxy.on_request(proxy.count)
                path = self.path[3:] if self.path.startswith("/v1") else self.path
                req = urllib.request.Request(
                    proxy.target + path,
                    data=body,
                    method=method,
                    headers={"Content-Type": "application/json"},
                )
                try:
                    with urllib.request.urlopen(req, timeout=600) as resp:
                        data = resp.read()
                        status = resp.status
                except OSError:
                    self.close_connection = True  # no answer at all, like a dead server
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802
                self._forward("POST")

            def do_GET(self):  # noqa: N802
                self._forward("GET")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> CountingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
