"""A real webhook receiver on 127.0.0.1 for the alert tests (Slack-compatible JSON bodies)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

SECRET = "T000-B000-secretpath"


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that keeps the JSON bodies POSTed to it (parsed strictly: a bare NaN or
    Infinity, which JSON does not have, fails the request with 400 and is kept in `invalid`)."""

    def __init__(self, status: int = 200) -> None:
        received: list[dict[str, Any]] = []
        paths: list[str] = []
        invalid: list[bytes] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    received.append(json.loads(body, parse_constant=_refuse))
                except ValueError:
                    invalid.append(body)
                    self.send_response(400)
                    self.end_headers()
                    return
                paths.append(self.path)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.received = received
        self.paths = paths
        self.invalid = invalid
        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/services/{SECRET}"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
