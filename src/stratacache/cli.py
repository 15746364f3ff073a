"""The ``stratacache`` command line.

* ``demo``, ``serve``, ``check-log``, ``simulate``: the library's demo, the cache server, the
  append-only log checker and the eviction-policy simulator;
* ``get``, ``set``, ``del``, ``ttl``, ``keys``, ``stats``: one operation on the cache a URL
  names (``stratacache get redis://localhost:6379/0 user:1``);
* ``warm URL --from FILE``: load a file of entries into the cache (``Cache.warm``);
* ``bench URL``: stratacache beside the library a user would pick for that URL.

Exit status: 0 done; 1 a miss or nothing found (``get``/``ttl`` of an absent key, ``del``
that deleted nothing, ``set --nx`` of a present key, ``warm`` with failed entries); 2 a usage
error (unknown option, bad URL or parameter: one line naming it); 3 the cache failed
(unreachable server, an operation the backend cannot do). Passwords and secret parameters
of URLs are masked in everything printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

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


# ----------------------------------------------------------------- cache commands
# get/set/del/ttl/keys/stats/warm/bench: one cache, named by a URL, per run.

EXIT_OK, EXIT_MISS, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3


def _url_secrets(url: str) -> tuple[str, ...]:
    """The secrets a URL carries (its password, secret query values), to scrub from messages."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    from stratacache._redact import is_secret

    found: list[str] = []
    try:
        parts = urlsplit(url)
        if parts.password:
            found += [parts.password, unquote(parts.password)]
        found += [v for k, v in parse_qsl(parts.query) if is_secret(k)]
    except ValueError:
        pass
    return tuple(s for s in found if s)


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    from stratacache._redact import scrub

    url = getattr(args, "url", "")
    text = scrub(message, _url_secrets(url)).replace("\n", " ")
    print(f"stratacache {args.command}: {text}", file=sys.stderr)
    return code


def _ttl_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number), got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _progress_flag(args: argparse.Namespace) -> bool | None:
    # None: shown when stderr is a terminal.
    return {"auto": None, "on": True, "off": False}[args.progress]


def _add_cache_commands(sub: Any) -> None:
    def command(name: str, help_text: str, *, key: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("url", metavar="URL", help="the cache, e.g. redis://localhost:6379/0?namespace=app")
        if key:
            p.add_argument("key", metavar="KEY")
        return p

    get = command("get", "print the value at KEY (exit 1 on a miss)")
    get_mode = get.add_mutually_exclusive_group()
    get_mode.add_argument("--json", action="store_true", help="print the value as JSON")
    get_mode.add_argument("--raw", action="store_true", help="write the stored text/bytes exactly")

    set_ = command("set", "store VALUE at KEY")
    set_.add_argument("value", metavar="VALUE", help="the value; - reads it from stdin")
    set_mode = set_.add_mutually_exclusive_group()
    set_mode.add_argument("--json", action="store_true", help="parse VALUE as JSON (numbers, lists, ...)")
    set_mode.add_argument("--raw", action="store_true", help="store VALUE as bytes")
    set_.add_argument("--ttl", type=_ttl_arg, metavar="SECONDS", help="expire after SECONDS")
    set_.add_argument("--nx", action="store_true", help="only if KEY is absent (exit 1 if present)")

    delete = command("del", "delete KEY... (exit 1 if none existed)", key=False)
    delete.add_argument("keys", metavar="KEY", nargs="+")

    ttl = command("ttl", "print KEY's seconds to live, or none (exit 1 if absent)")
    ttl.add_argument("--json", action="store_true", help="print a number, or null for no expiry")

    keys = command("keys", "list the keys matching a glob (SCAN on Redis; not on Memcached)", key=False)
    keys.add_argument("pattern", metavar="PATTERN", nargs="?", default="*", help="a glob (default *)")
    keys.add_argument("--json", action="store_true", help="print a JSON list")

    stats = command("stats", "print the cache's statistics (items, bytes, the backend's own)", key=False)
    stats.add_argument("--json", action="store_true", help="print JSON")

    warm = command("warm", "load a file of key,value entries into the cache (Cache.warm)", key=False)
    warm.add_argument("--from", dest="source", required=True, metavar="FILE", help="JSON lines or CSV")
    warm.add_argument("--format", choices=["jsonl", "csv"], help="the file's format (default: by extension)")
    warm.add_argument("--ttl", type=_ttl_arg, metavar="SECONDS", help="expire the entries after SECONDS")
    warm.add_argument("--concurrency", type=_positive, default=8, metavar="N", help="writes at once (8)")

    bench = command("bench", "time stratacache beside the library you would use for URL", key=False)
    bench.add_argument("--ops", type=_positive, default=2000, metavar="N", help="operations per round (2000)")
    bench.add_argument("--rounds", type=_positive, default=5, metavar="N", help="timed rounds (5)")
    bench.add_argument("--value-size", type=_positive, default=100, metavar="BYTES", help="value size (100)")
    bench.add_argument("--plot", metavar="FILE.png", help="also draw the figures (needs matplotlib)")
    for p in (warm, bench):
        p.add_argument(
            "--progress",
            choices=["auto", "on", "off"],
            default="auto",
            help="progress bar (auto: on a terminal)",
        )


def _get(cache: Any, args: argparse.Namespace) -> int:
    from stratacache import MISSING
    from stratacache._cli_values import format_value, raw_bytes

    value = cache.get(args.key, MISSING)
    if value is MISSING:
        return _fail(args, f"no such key: {args.key!r}", EXIT_MISS)
    if args.raw:
        sys.stdout.flush()
        sys.stdout.buffer.write(raw_bytes(value))
        sys.stdout.buffer.flush()
    else:
        print(format_value(value, as_json=args.json))
    return EXIT_OK


def _set(cache: Any, args: argparse.Namespace) -> int:
    from stratacache import UNSET
    from stratacache._cli_values import parse_value

    text = sys.stdin.read() if args.value == "-" else args.value
    value = parse_value(text, as_json=args.json, raw=args.raw)
    ttl = UNSET if args.ttl is None else args.ttl
    if args.nx:
        if not cache.add(args.key, value, ttl):
            return _fail(args, f"not stored: {args.key!r} is present (--nx)", EXIT_MISS)
    else:
        cache.set(args.key, value, ttl)
    print("OK")
    return EXIT_OK


def _del(cache: Any, args: argparse.Namespace) -> int:
    deleted = cache.delete_many(args.keys)
    print(deleted)
    return EXIT_OK if deleted else EXIT_MISS


def _ttl(cache: Any, args: argparse.Namespace) -> int:
    from stratacache import MISSING

    left = cache.ttl(args.key)
    if left is MISSING:
        return _fail(args, f"no such key: {args.key!r}", EXIT_MISS)
    if args.json:
        print("null" if left is None else round(left, 3))
    else:
        print("none" if left is None else f"{left:.3f}")
    return EXIT_OK


def _keys(cache: Any, args: argparse.Namespace) -> int:
    import json

    found = cache.keys(args.pattern)
    if args.json:
        print(json.dumps(list(found), ensure_ascii=False))
    else:
        for key in found:
            print(key)
    return EXIT_OK


def _stats(cache: Any, args: argparse.Namespace) -> int:
    import dataclasses

    from stratacache._cli_values import to_json
    from stratacache._redact import redact

    fields = redact(dataclasses.asdict(cache.stats()))
    fields["hit_rate"] = cache.stats().hit_rate
    if args.json:
        print(to_json(fields))
        return EXIT_OK
    backend = fields.pop("backend", {}) or {}
    for name, value in fields.items():
        shown = value
        if isinstance(value, dict):
            shown = " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
        print(f"{name:<14} {shown}")
    for name, value in sorted(backend.items()):
        print(f"backend.{name:<6} {value}")
    return EXIT_OK


def _warm(cache: Any, args: argparse.Namespace) -> int:
    from stratacache import UNSET
    from stratacache._cli_progress import Progress
    from stratacache._cli_values import read_entries

    entries = read_entries(args.source, args.format)
    ttl = UNSET if args.ttl is None else args.ttl
    with Progress("warm", len(entries), enabled=_progress_flag(args)) as bar:
        report = cache.warm(entries, concurrency=args.concurrency, ttl=ttl, progress=bar.update)
    print(
        f"warmed {report.loaded} of {len(entries)} entries in {report.seconds:.2f} s "
        f"(failed {report.failed}, skipped {report.skipped})"
    )
    errors = report.errors
    shown = list(errors.items()) if isinstance(errors, dict) else list(enumerate(errors))
    for key, error in shown[:10]:
        print(f"  failed: {key}: {error}")
    if len(shown) > 10:
        print(f"  ... and {len(shown) - 10} more")
    return EXIT_MISS if report.failed else EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    from stratacache._cli_bench import format_table, plot, run_bench

    result = run_bench(
        args.url, ops=args.ops, rounds=args.rounds, value_size=args.value_size, progress=_progress_flag(args)
    )
    print(format_table(result))
    if args.plot:
        plot(result, args.plot)
        print(f"plot written to {args.plot}")
    return EXIT_OK


_CACHE_COMMANDS = {
    "get": _get,
    "set": _set,
    "del": _del,
    "ttl": _ttl,
    "keys": _keys,
    "stats": _stats,
    "warm": _warm,
}


def _open(url: str) -> Any:
    import stratacache as sc

    return sc.Cache(url)


def _run_cache_command(args: argparse.Namespace) -> int:
    import stratacache as sc

    try:
        if args.command == "bench":
            _open(args.url).close()  # a bad URL is a usage error before anything is timed
            return _bench(args)
        with _open(args.url) as cache:
            return _CACHE_COMMANDS[args.command](cache, args)
    except (sc.ConfigurationError, sc.InvalidArgument, sc.InvalidKey, sc.InvalidTTL) as exc:
        return _fail(args, str(exc), EXIT_USAGE)
    except sc.CacheError as exc:
        return _fail(args, f"{type(exc).__name__}: {exc}", EXIT_FAILED)


class _Printer:
    def __call__(self, text: str) -> None:
        print(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    A reader that stops early (``stratacache keys URL | head -3``) closes the pipe: that ends
    the command quietly with status 0, not a BrokenPipeError traceback.
    """
    try:
        status = _main(argv)
        # Flushed here, inside the try: buffered output would otherwise hit the closed pipe
        # at interpreter exit, outside any handler.
        sys.stdout.flush()
    except BrokenPipeError:
        # Python's recipe (library/signal.html, "Note on SIGPIPE"): point stdout at devnull
        # so the flush at exit cannot fail again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # stdout without a file descriptor (a test's capture)
            pass
        return 0
    return status


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulate"]:
        # The simulator owns its arguments (several --policy/--size, percentages, ...).
        from stratacache.core.simulate import main as simulate_main

        return simulate_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="stratacache",
        description="stratacache command line",
        epilog="exit status of the cache commands: 0 done, 1 a miss or nothing found, "
        "2 a usage error, 3 the cache failed",
    )
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
    _add_cache_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "demo":
        _demo(_Printer())
        return 0
    if args.command == "serve":
        return _serve(args)
    if args.command == "check-log":
        return _check_log(args)
    if args.command in _CACHE_COMMANDS or args.command == "bench":
        return _run_cache_command(args)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse rejects first
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
