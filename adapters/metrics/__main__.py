"""metrics-adapter: parse flags into Settings, load configs, run the service.

Exit codes follow the project convention: 0 on a clean stop, 1 for a config error (one line
naming the flag or key), 2 for an unknown flag.
"""

from __future__ import annotations

import asyncio
import sys
from importlib.metadata import version

from adapters.metrics import logs
from adapters.metrics.errors import ConfigError
from adapters.metrics.flags import UsageError, parse_flags, usage
from adapters.metrics.service import Service, load, validate


def _event_loop_policy() -> None:
    # uvloop's UDP and TCP paths are markedly cheaper than asyncio's default loop.
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        parsed = parse_flags(args)
    except UsageError as err:
        print(f"metrics-adapter: error: {err}", file=sys.stderr)
        return 2
    except ConfigError as err:
        print(f"metrics-adapter: error: {err}", file=sys.stderr)
        return 1
    if parsed == "help":
        sys.stdout.write(usage())
        return 0
    if parsed == "version":
        print(f"metrics-adapter, version {version('podpatterns')}")
        return 0
    assert not isinstance(parsed, str)
    settings = parsed
    log = logs.configure(settings.log_level, settings.log_format)
    if settings.debug_dump_fsm:
        log.warning("--debug.dump-fsm: globs are matched without an FSM here; nothing to dump")

    async def serve() -> int:
        validate(settings)
        # Inside the loop: scrape-time sources may create loop-bound clients.
        loaded = load(settings)
        if settings.check_config:
            for source in loaded.sources:
                await source.close()
            log.info("configuration check successful, exiting")
            return 0
        return await Service(settings, loaded).run()

    _event_loop_policy()
    try:
        return asyncio.run(serve())
    except ConfigError as err:
        print(f"metrics-adapter: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
