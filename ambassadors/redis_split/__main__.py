"""Entry point of redis-ambassador (a placeholder until the service lands)."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="redis-ambassador",
        description="A localhost Redis proxy: writes to the master, reads to healthy replicas.",
    )
    parser.add_argument(
        "--version", action="version", version=f"redis-ambassador {version('podpatterns')}"
    )
    parser.parse_args(argv)
    print("redis-ambassador: not implemented yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
