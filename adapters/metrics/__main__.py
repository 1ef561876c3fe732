"""Entry point of metrics-adapter (a placeholder until the service lands)."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="metrics-adapter",
        description="StatsD, JMX and application stats to one Prometheus /metrics.",
    )
    parser.add_argument(
        "--version", action="version", version=f"metrics-adapter {version('podpatterns')}"
    )
    parser.parse_args(argv)
    print("metrics-adapter: not implemented yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
