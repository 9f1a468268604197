"""Judge metrics: one markdown prompt per file in ``prompts/`` (``EVALUATION_METRICS_DIR``; a
new ``.md`` file is a new metric, named after the file).

A file may start with front matter between ``---`` lines, ``key: value`` each::

    ---
    version: 2
    description: Does the answer stick to what the tools returned?
    threshold: 0.7
    ---
    # Hallucination
    ... {input} ... {output} ... {context} ...

Slots, replaced by the run's values: ``{input}`` (the message), ``{output}`` (the answer),
``{context}`` (what the tools returned), ``{plan}``, ``{tool_calls}`` (name, arguments and
outcome of each call) and ``{expected}`` (a dataset case's expected answer; empty otherwise).
Other braces are left alone (a JSON example in the prompt is fine). Every metric scores 1.0 for
the best answer. A broken file (an unknown slot, bad front matter, no prompt) raises
``MetricInvalid`` naming the file and the problem.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from evaluations.errors import MetricInvalid, UnknownMetric

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
SLOTS = ("input", "output", "context", "plan", "tool_calls", "expected")
FRONT_MATTER_KEYS = ("version", "description", "threshold")
_SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Metric:
    name: str
    prompt: str
    version: str = "1"
    description: str = ""
    threshold: float | None = None
    sha256: str = ""
    path: str = ""

    def render(self, values: dict[str, str]) -> str:
        """The prompt with its slots filled (missing values are empty)."""
        return _SLOT.sub(lambda m: values.get(m.group(1), ""), self.prompt)

    @property
    def slots(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_SLOT.findall(self.prompt)))


def _front_matter(path: Path, text: str) -> tuple[dict[str, str], str]:
    if not text.startswith("---"):
        return {}, text
    lines = text.splitlines(keepends=True)
    try:
        end = next(i for i, line in enumerate(lines[1:], start=1) if line.strip() == "---")
    except StopIteration:
        raise MetricInvalid(f"{path.name}: front matter opened with --- is never closed") from None
    values: dict[str, str] = {}
    for number, line in enumerate(lines[1:end], start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep:
            raise MetricInvalid(f"{path.name}, line {number}: expected 'key: value', got {line!r}")
        if key not in FRONT_MATTER_KEYS:
            raise MetricInvalid(
                f"{path.name}, line {number}: unknown front matter key {key!r} "
                f"(allowed: {', '.join(FRONT_MATTER_KEYS)})"
            )
        values[key] = value.strip().strip("\"'")
    return values, "".join(lines[end + 1 :])


def load_metric(path: Path) -> Metric:
    """One metric file, checked. Raises ``MetricInvalid`` naming the file."""
    name = path.stem
    if not _NAME.match(name):
        raise MetricInvalid(
            f"{path.name}: a metric file name is lowercase letters, digits and _ "
            "(it becomes the score's name)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MetricInvalid(f"{path.name}: cannot be read ({exc})") from exc
    meta, prompt = _front_matter(path, text)
    prompt = prompt.strip()
    if not prompt:
        raise MetricInvalid(f"{path.name}: the prompt is empty")
    unknown = sorted(set(_SLOT.findall(prompt)) - set(SLOTS))
    if unknown:
        raise MetricInvalid(
            f"{path.name}: unknown slot(s) {', '.join('{' + s + '}' for s in unknown)} "
            f"(allowed: {', '.join('{' + s + '}' for s in SLOTS)})"
        )
    if not {"input", "output"} & set(_SLOT.findall(prompt)):
        raise MetricInvalid(f"{path.name}: the prompt uses neither {{input}} nor {{output}}")
    threshold: float | None = None
    if meta.get("threshold"):
        try:
            threshold = float(meta["threshold"])
        except ValueError:
            threshold = -1.0
        if not 0.0 <= threshold <= 1.0:
            raise MetricInvalid(
                f"{path.name}: threshold {meta['threshold']!r} is not a number from 0 to 1"
            )
    return Metric(
        name=name,
        prompt=prompt,
        version=meta.get("version") or "1",
        description=meta.get("description", ""),
        threshold=threshold,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        path=str(path),
    )


@lru_cache(maxsize=8)
def _load_dir(directory: str, stamp: tuple[tuple[str, float], ...]) -> dict[str, Metric]:
    return {path.stem: load_metric(path) for path in sorted(Path(directory).glob("*.md"))}


def load_metrics(directory: Path | None = None) -> dict[str, Metric]:
    """Every metric of ``directory`` (default ``EVALUATION_METRICS_DIR``), by name; re-read when
    a file changes."""
    from django.conf import settings

    folder = directory or Path(getattr(settings, "EVALUATION_METRICS_DIR", "") or PROMPTS_DIR)
    if not folder.is_dir():
        raise MetricInvalid(f"The metrics folder {folder} does not exist.")
    stamp = tuple((p.name, p.stat().st_mtime) for p in sorted(folder.glob("*.md")))
    return _load_dir(str(folder), stamp)


def select_metrics(names: list[str] | None, directory: Path | None = None) -> list[Metric]:
    """The named metrics (all of them when ``names`` is empty); ``UnknownMetric`` otherwise."""
    available = load_metrics(directory)
    if not names:
        return list(available.values())
    unknown = [n for n in names if n not in available]
    if unknown:
        raise UnknownMetric(
            f"Unknown metric(s): {', '.join(unknown)}. Available: {', '.join(available)}."
        )
    return [available[n] for n in dict.fromkeys(names)]


__all__ = ["PROMPTS_DIR", "SLOTS", "Metric", "load_metric", "load_metrics", "select_metrics"]
