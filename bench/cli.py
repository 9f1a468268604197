"""The command line every ``bench/<scenario>.py`` shares."""

from __future__ import annotations

import argparse
import inspect
import json

from bench import scenarios


def main(name: str) -> None:
    func = getattr(scenarios, name)
    parser = argparse.ArgumentParser(description=(func.__doc__ or name).splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="seconds, not minutes (CI)")
    parser.add_argument("--label", default="", help="save var/bench/<scenario>-<label>.json")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter of the scenario: "
        + ", ".join(p for p in inspect.signature(func).parameters if p != "smoke"),
    )
    args = parser.parse_args()
    params = {}
    for item in args.set:
        key, _, value = item.partition("=")
        params[key] = json.loads(value) if value[:1] in "0123456789[{tfn-" else value
    result = func(smoke=args.smoke, **params)
    if args.label:
        scenarios.save(name, args.label, result)
    print(json.dumps(result, indent=2))
