"""Container probe: ``python docker/healthcheck.py [/healthz|/readyz]`` exits 0 when it answers 200.

Sends the first ``ALLOWED_HOSTS`` entry as the Host header (Django refuses hosts it does not
know, and a probe from inside the container would otherwise say ``127.0.0.1``).
"""

from __future__ import annotations

import os
import sys
import urllib.request


def probe_host() -> str:
    for host in os.environ.get("ALLOWED_HOSTS", "").split(","):
        host = host.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def main(path: str) -> int:
    port = os.environ.get("PORT") or "8000"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Host": probe_host()}
    )
    try:
        with urllib.request.urlopen(request, timeout=4) as response:  # noqa: S310
            return 0 if response.status == 200 else 1
    except OSError as exc:  # URLError, HTTPError (a 4xx/5xx), refused, timed out
        print(f"{path}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "/healthz"))
