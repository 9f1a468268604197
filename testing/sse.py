"""A small Server-Sent Events reader for tests: (event, data, arrival time) as they come."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Event:
    event: str
    data: Any
    at: float
    id: str | None = None  # the event's ``id:`` line (comments have none)


def read_events(response: httpx.Response) -> Iterator[Event]:
    event, data, event_id = "message", list[str](), None
    for line in response.iter_lines():
        if line == "":
            if data:
                yield Event(event, json.loads("\n".join(data)), time.monotonic(), event_id)
            event, data, event_id = "message", list[str](), None
        elif line.startswith(":"):
            yield Event("comment", line[1:].strip(), time.monotonic())
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
