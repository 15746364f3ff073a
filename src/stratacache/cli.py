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

    from stratacache._exceptions import ConfigurationError, SnapshotError
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
            "admin-port": args.admin_port,
            "admin-bind": args.admin_bind,
            "memcached-port": args.memcached_port,
        }
        for name, value in overrides.items():
            if value is not None:
                config.set(name, value, where="command line")
                config.overrides[name] = value  # kept over the file on a SIGHUP reload
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
    from stratacache.server.aof import AofLoadError

    try:
        return run(config, announce=lambda text: print(text, flush=True))
    except SnapshotError as exc:
        print(f"stratacache serve: cannot load the snapshot: {exc}", file=sys.stderr)
        return 1
    except AofLoadError as exc:
        print(f"stratacache serve: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"stratacache serve: cannot listen: {exc}", file=sys.stderr)
        return 1


def _check_log(args: argparse.Namespace) -> int:
    from stratacache.server.aof_check import check_log

    if args.truncate_at_corruption and not args.fix:
        print("stratacache check-log: --truncate-at-corruption goes with --fix", file=sys.stderr)
        return 2
    return check_log(args.file, fix=args.fix, truncate_at_corruption=args.truncate_at_corruption, out=print)


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
    serve.add_argument(
        "--memcached-port", type=int, metavar="PORT", help="also serve the Memcached protocol on PORT"
    )
    serve.add_argument(
        "--admin-port", type=int, metavar="PORT", help="HTTP port of /metrics, /health, /stats (default: off)"
    )
    serve.add_argument(
        "--admin-bind", metavar="ADDRESS", help="address of the admin port (default 127.0.0.1)"
    )
    check = sub.add_parser(
        "check-log",
        help="explain (and with --fix repair) a server append-only log",
        description="Read an append-only log without loading it: count its commands, find "
        "the last good offset and say what is wrong after it. --fix truncates a torn tail "
        "(an incomplete last command); corruption in the middle is only cut with "
        "--fix --truncate-at-corruption, which loses what follows it.",
    )
    check.add_argument("file", metavar="FILE", help="the log (e.g. appendonly.aof)")
    check.add_argument("--fix", action="store_true", help="truncate a torn tail")
    check.add_argument(
        "--truncate-at-corruption",
        action="store_true",
        help="with --fix: also cut the log at a corruption (what follows is lost)",
    )
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
    if args.command == "check-log":
        return _check_log(args)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse rejects first
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
