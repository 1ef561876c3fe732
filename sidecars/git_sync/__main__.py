"""Entry point of git-sync (a placeholder until the service lands)."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="git-sync",
        description="Keep a git repository checked out in a volume, updated atomically.",
    )
    parser.add_argument("--version", action="version", version=f"git-sync {version('podpatterns')}")
    parser.parse_args(argv)
    print("git-sync: not implemented yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
