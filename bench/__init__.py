"""Benchmarks, run by hand (``docs/benchmarks.md``); a seconds-long smoke of each runs in CI."""
