"""The ``stratacache`` command line: ``stratacache demo`` (and later ``serve``, ``simulate``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _demo(out: _Printer) -> None:
    import stratacache as sc
    from stratacache.testing.clock import FakeClock

    clock = FakeClock()
    out("stratacache demo: the embedded memory backend, sync and async\n")
    with sc.Cache(
        "memory://?max_entries=3&policy=lru", namespace="demo", default_ttl=60, clock=clock
    ) as cache:
        out(f"cache           = {cache!r}")
        cache.set("user:1", {"name": "Ada", "langs": ("en", "fr")})
        out(f"get user:1      -> {cache.get('user:1')!r}")
        out(f"get user:2      -> {cache.get('user:2', default='<miss>')!r} (a miss returns the default)")
        cache.set("none", None)
        out(f"get none        -> {cache.get('none', default='<miss>')!r} (a stored None stays None)")
        out(f"ttl user:1      -> {cache.ttl('user:1')} s (default_ttl=60)")
        clock.advance(61)
        out(f"after 61 s      -> {cache.get('user:1', default='<expired>')!r}")
        out(f"incr visits x3  -> {[cache.incr('visits') for _ in range(3)]}")
        out(f"add once/twice  -> {cache.add('lock', 'me')}, {cache.add('lock', 'you')}")
        for i in range(5):
            cache.set(f"item:{i}", i)
        out(f"lru, 3 entries  -> {sorted(cache.get_many([f'item:{i}' for i in range(5)]).items())}")
        cache.rpush("queue", "a", "b", "c")
        out(f"list            -> lpop={cache.lpop('queue')!r} lrange={cache.lrange('queue')}")
        calls = []

        def expensive() -> str:
            calls.append(1)
            return "computed"

        results = [cache.get_or_set("slow", expensive, ttl=30) for _ in range(3)]
        out(f"get_or_set x3   -> {results}, factory ran {len(calls)} time(s)")
        stats = cache.stats()
        out(
            f"stats           -> hits={stats.hits} misses={stats.misses} sets={stats.sets} "
            f"evictions={stats.evictions} expirations={stats.expirations} hit_rate={stats.hit_rate:.2f}"
        )
        try:
            cache.set("bad", 1, ttl=-5)
        except sc.InvalidTTL as exc:
            out(f"bad ttl         -> {type(exc).__name__}: {exc}")

    async def async_part() -> None:
        async with sc.AsyncCache("memory://", namespace="demo") as acache:
            await acache.set("k", [1, 2, 3])
            out(f"\nAsyncCache get  -> {await acache.get('k')!r}")

    asyncio.run(async_part())
    out("\ndone.")


def _serve(args: argparse.Namespace) -> int:
    import logging

    from stratacache._exceptions import ConfigurationError
    from stratacache.server import ServerConfig, load_config, run
    from stratacache.server.cluster import make_cluster

    try:
        config = load_config(args.config) if args.config else ServerConfig()
        overrides = {
            "port": args.port,
            "bind": args.bind,
            "maxmemory": args.maxmemory,
            "maxmemory-policy": args.maxmemory_policy,
            "requirepass": args.requirepass,
            "loglevel": args.loglevel,
        }
        for name, value in overrides.items():
            if value is not None:
                config.set(name, value, where="command line")
        # Cluster mode: this node must be in the layout (found by the final port).
        make_cluster(config)
    except ConfigurationError as exc:
        print(f"stratacache serve: {exc}", file=sys.stderr)
        return 2
    levels = {
        "debug": logging.DEBUG,
        "verbose": logging.INFO,
        "notice": logging.INFO,
        "warning": logging.WARNING,
    }
    logging.basicConfig(
        level=levels.get(config.loglevel, logging.CRITICAL),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        filename=config.logfile or None,
    )
    try:
        return run(config, announce=lambda text: print(text, flush=True))
    except OSError as exc:
        print(f"stratacache serve: cannot listen: {exc}", file=sys.stderr)
        return 1


class _Printer:
    def __call__(self, text: str) -> None:
        print(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulate"]:
        # The simulator owns its arguments (several --policy/--size, percentages, ...).
        from stratacache.core.simulate import main as simulate_main

        return simulate_main(argv[1:])
    parser = argparse.ArgumentParser(prog="stratacache", description="stratacache command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="show the library at work on the embedded memory backend")
    serve = sub.add_parser(
        "serve",
        help="run the Redis-protocol cache server (stratacache serve --help)",
        description="Run the Redis-protocol cache server on the memory engine. With no "
        "arguments it listens on 127.0.0.1:7379 with a 512 MiB memory limit.",
    )
    serve.add_argument("--config", metavar="FILE", help="a YAML configuration file")
    serve.add_argument("--port", type=int, help="TCP port (default 7379)")
    serve.add_argument(
        "--bind", nargs="+", metavar="ADDRESS", help="addresses to listen on (default 127.0.0.1)"
    )
    serve.add_argument("--maxmemory", metavar="SIZE", help="memory limit, e.g. 256mb or 2gb")
    serve.add_argument(
        "--maxmemory-policy", metavar="POLICY", help="noeviction, allkeys-lru, allkeys-lfu, ..."
    )
    serve.add_argument("--requirepass", metavar="PASSWORD", help="password clients must AUTH with")
    serve.add_argument("--loglevel", metavar="LEVEL", help="debug, verbose, notice (default), warning")
    sub.add_parser(
        "simulate",
        help="replay an access trace against eviction policies and print hit ratios "
        "(stratacache simulate --help)",
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        _demo(_Printer())
        return 0
    if args.command == "serve":
        return _serve(args)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse rejects first
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
