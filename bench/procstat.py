"""CPU time, resident memory and threads of a server's process tree, from ``/proc``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # after "pid (comm) "


def children(pid: int) -> list[int]:
    """Every live descendant of ``pid``."""
    found: list[int] = []
    parents = {pid}
    entries = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    changed = True
    while changed:
        changed = False
        for entry in entries:
            if entry in parents or entry in found:
                continue
            try:
                ppid = int(_stat_fields(entry)[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid in parents:
                found.append(entry)
                parents.add(entry)
                changed = True
    return found


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


@dataclass(frozen=True)
class ProcessSample:
    pid: int
    cpu_seconds: float  # user + system, every thread
    rss_mib: float
    threads: int


def sample(pid: int) -> ProcessSample:
    fields = _stat_fields(pid)
    return ProcessSample(
        pid=pid,
        cpu_seconds=(int(fields[11]) + int(fields[12])) / TICKS,
        rss_mib=_status(pid, "VmRSS") / 1024,
        threads=_status(pid, "Threads"),
    )


def sample_tree(master: int) -> dict[int, ProcessSample]:
    """The master and all its children (gunicorn: the workers), by pid."""
    samples = {}
    for pid in [master, *children(master)]:
        try:
            samples[pid] = sample(pid)
        except OSError:  # it just exited
            continue
    return samples


def cpu_between(before: dict[int, ProcessSample], after: dict[int, ProcessSample]) -> float:
    """Server CPU seconds spent between two samples (a process started in between counts whole)."""
    return sum(
        s.cpu_seconds - (before[p].cpu_seconds if p in before else 0.0) for p, s in after.items()
    )
