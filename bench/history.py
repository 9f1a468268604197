"""Benchmark scenario `history` (`bench.scenarios.history`, docs/benchmarks.md); prints JSON.

.venv/bin/python bench/history.py [--smoke] [--label before|after] [--set NAME=VALUE ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cli import main

if __name__ == "__main__":
    main("history")
