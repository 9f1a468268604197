"""A local HTTP listener that records what the agent's HTTP tools send it (tests allow it with
``HTTP_TOOL_ALLOWED_NETWORKS=127.0.0.0/8``)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Canary:
    """A local listener that records every request the agent's HTTP tools send it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        canary = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                canary.received.append(
                    {"path": self.path, "body": self.rfile.read(length).decode()}
                )
                payload = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
