"""The command line's cache verbs (get/set/del/ttl/keys/stats), bench and warm, run in-process
through ``stratacache.cli.main`` against memory, file and real Redis/Memcached servers."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import stratacache as sc
from stratacache._cli_progress import Progress
from stratacache._cli_values import format_value, parse_value, raw_bytes, read_entries, to_json
from stratacache.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def file_url(tmp_path: Path) -> str:
    return f"file://{tmp_path / 'cache'}?namespace=cli"


def test_round_trip_on_the_file_backend(capsys: pytest.CaptureFixture[str], file_url: str) -> None:
    assert run(capsys, "set", file_url, "greeting", "hello") == (0, "OK\n", "")
    assert run(capsys, "get", file_url, "greeting") == (0, "hello\n", "")
    assert (
        run(capsys, "set", file_url, "user:1", '{"name": "Ada", "n": [1, 2]}', "--json", "--ttl", "60")[0]
        == 0
    )
    code, out, _ = run(capsys, "get", file_url, "user:1", "--json")
    assert (code, json.loads(out)) == (0, {"name": "Ada", "n": [1, 2]})
    assert run(capsys, "get", file_url, "user:1")[1] == "{'name': 'Ada', 'n': [1, 2]}\n"
    code, out, _ = run(capsys, "ttl", file_url, "user:1")
    assert code == 0
    assert 0 < float(out) <= 60
    assert run(capsys, "ttl", file_url, "greeting") == (0, "none\n", "")
    assert run(capsys, "ttl", file_url, "greeting", "--json") == (0, "null\n", "")
    assert run(capsys, "keys", file_url) == (0, "greeting\nuser:1\n", "")
    assert run(capsys, "keys", file_url, "user:*", "--json") == (0, '["user:1"]\n', "")
    # --nx: stored only when absent; a present key exits 1.
    assert run(capsys, "set", file_url, "greeting", "other", "--nx")[0] == 1
    assert run(capsys, "get", file_url, "greeting")[1] == "hello\n"
    assert run(capsys, "del", file_url, "greeting", "user:1", "nope") == (0, "2\n", "")
    assert run(capsys, "del", file_url, "greeting")[0:2] == (1, "0\n")
    assert run(capsys, "keys", file_url) == (0, "", "")


def test_misses_exit_1_with_one_line(capsys: pytest.CaptureFixture[str], file_url: str) -> None:
    code, out, err = run(capsys, "get", file_url, "absent")
    assert (code, out) == (1, "")
    assert err == "stratacache get: no such key: 'absent'\n"
    code, out, err = run(capsys, "ttl", file_url, "absent")
    assert (code, out, err) == (1, "", "stratacache ttl: no such key: 'absent'\n")


def test_raw_values(capsysbinary: pytest.CaptureFixture[bytes], file_url: str) -> None:
    assert main(["set", file_url, "blob", "b\u00e9", "--raw"]) == 0
    capsysbinary.readouterr()
    assert main(["get", file_url, "blob", "--raw"]) == 0
    assert capsysbinary.readouterr().out == "b\u00e9".encode()  # no newline added
    assert main(["set", file_url, "n", "5", "--json"]) == 0
    capsysbinary.readouterr()
    assert main(["get", file_url, "n", "--raw"]) == 2  # an int has no raw form
    assert b"--raw needs a stored str or bytes" in capsysbinary.readouterr().err


def test_set_reads_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, file_url: str
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("[1, 2, 3]"))
    assert run(capsys, "set", file_url, "list", "-", "--json")[0] == 0
    assert run(capsys, "get", file_url, "list", "--json") == (0, "[1, 2, 3]\n", "")


def test_memory_url_is_a_fresh_cache_per_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "set", "memory://", "k", "v") == (0, "OK\n", "")
    assert run(capsys, "get", "memory://", "k")[0] == 1
    assert run(capsys, "keys", "memory://?namespace=x") == (0, "", "")
    code, out, _ = run(capsys, "stats", "memory://", "--json")
    assert code == 0
    assert json.loads(out)["hits"] == 0


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["get", "memory://?max_entries=abc", "k"], "parameter 'max_entries'"),
        (["keys", "memory://?bogus=1"], "unknown URL parameter 'bogus'"),
        (["set", "nosuch://x", "k", "v"], "unknown URL scheme 'nosuch'"),
        (["stats", "file://"], "needs a directory"),
        (["set", "memory://", "k", "{oops", "--json"], "not valid JSON"),
        (["bench", "nosuch://", "--ops", "1"], "unknown URL scheme 'nosuch'"),
        (["get", "redis://:pw@[::1/0", "k"], "not a valid URL (Invalid IPv6 URL): 'redis://:***@[::1/0'"),
    ],
)
def test_usage_errors_exit_2_naming_the_fault(
    capsys: pytest.CaptureFixture[str], argv: list[str], names: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"stratacache {argv[0]}: ")
    assert names in err


@pytest.mark.parametrize(
    "argv",
    [
        ["get"],
        ["set", "memory://", "k"],
        ["set", "memory://", "k", "v", "--ttl", "-1"],
        ["get", "memory://", "k", "--json", "--raw"],
        ["warm", "memory://"],
        ["bench", "memory://", "--ops", "0"],
        ["bench", "memory://", "--ops", "many"],
        ["set", "memory://", "k", "v", "--ttl", "soon"],
    ],
)
def test_argument_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage: stratacache" in capsys.readouterr().err


def test_redis_verbs(capsys: pytest.CaptureFixture[str], redis_server: Any) -> None:
    url = f"{redis_server.url}?namespace=clitest"
    with sc.Cache(url) as cache:
        cache.clear()
        cache.set_many({f"user:{i}": {"id": i} for i in range(3)})
        cache.set("other", "x", ttl=100)
    assert run(capsys, "keys", url, "user:*") == (0, "user:0\nuser:1\nuser:2\n", "")
    assert run(capsys, "get", url, "user:2", "--json") == (0, '{"id": 2}\n', "")
    code, out, _ = run(capsys, "ttl", url, "other", "--json")
    assert code == 0
    assert 0 < float(out) <= 100
    assert run(capsys, "set", url, "n", "41", "--json")[0] == 0
    with sc.Cache(url) as cache:
        assert cache.incr("n") == 42
    code, out, _ = run(capsys, "stats", url)
    assert code == 0
    assert "items" in out
    assert run(capsys, "del", url, "user:0", "user:1")[0:2] == (0, "2\n")
    assert run(capsys, "keys", url, "--json") == (0, '["n", "other", "user:2"]\n', "")


def test_passwords_never_printed(capsys: pytest.CaptureFixture[str], redis_password_server: Any) -> None:
    good = redis_password_server.url
    code, out, err = run(capsys, "stats", good, "--json")
    assert code == 0
    assert err == ""
    wrong = "s3cret-W0rd!"
    bad = good.replace(f":{redis_password_server.password}@", f":{quote(wrong)}@")
    assert bad != good
    code, out, err = run(capsys, "get", bad, "k")
    assert code == 3
    assert err.startswith("stratacache get: ")
    assert wrong not in err
    assert quote(wrong) not in err
    code, out, err = run(capsys, "bench", bad, "--ops", "1", "--rounds", "1")
    assert code == 3
    assert wrong not in err + out
    assert quote(wrong) not in err + out


def test_unreachable_server_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    from servers import free_port

    code, out, err = run(capsys, "get", f"redis://127.0.0.1:{free_port()}/0?connect_timeout=2", "k")
    assert (code, out) == (3, "")
    assert err.startswith("stratacache get: BackendUnavailable: ")


def test_keys_on_memcached_names_the_backend(
    capsys: pytest.CaptureFixture[str], memcached_server: Any
) -> None:
    code, out, err = run(capsys, "keys", memcached_server.url)
    assert (code, out) == (3, "")
    assert err.startswith(
        "stratacache keys: UnsupportedOperation: backend 'memcached' does not support keys()"
    )


def test_keys_on_layered_and_sharded(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    l2 = quote(f"file://{tmp_path / 'l2'}", safe="")
    with sc.Cache(f"layered://?tier=memory%3A%2F%2F&tier={l2}") as cache:
        cache.set_many({"a": 1, "b": 2})
        assert cache.keys() == ["a", "b"]
    nodes = {f"n{i}": sc.MemoryBackend() for i in range(3)}
    with sc.Cache(sc.ShardedBackend(nodes=nodes), namespace="s") as cache:
        cache.set_many({f"k{i}": i for i in range(10)})
        assert cache.keys("k?") == [f"k{i}" for i in range(10)]
    with sc.Cache("null://") as cache:
        cache.set("a", 1)
        assert cache.keys() == []


def test_bench_memory_and_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "bench", "memory://", "--ops", "50", "--rounds", "2", "--progress", "off")
    assert code == 0
    assert "cachetools µs/op" in out
    assert "ratio vs cachetools" in out
    assert [line.split()[0] for line in out.splitlines()[3:6]] == ["set", "get", "get"]
    code, out, _ = run(capsys, "bench", f"file://{tmp_path / 'b'}", "--ops", "20", "--rounds", "1")
    assert code == 0
    assert "diskcache µs/op" in out
    # nothing left behind
    with sc.Cache(f"file://{tmp_path / 'b'}") as cache:
        assert cache.stats().items == 0


def test_bench_redis_with_plot(capsys: pytest.CaptureFixture[str], redis_server: Any, tmp_path: Path) -> None:
    png = tmp_path / "bench.png"
    url = f"{redis_server.url}?namespace=benchtest"
    code, out, _ = run(capsys, "bench", url, "--ops", "30", "--rounds", "2", "--plot", str(png))
    assert code == 0
    assert "redis-py µs/op" in out
    assert f"plot written to {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert redis_server.command("KEYS", "*scbench*") == []


def test_bench_without_a_peer_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "bench", "null://", "--ops", "5", "--rounds", "1")
    assert code == 0
    assert "no other library is compared on null:// URLs" in out
    assert "ratio vs" not in out


def test_bench_plot_needs_matplotlib(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # an import of it now fails
    code, _, err = run(
        capsys, "bench", "null://", "--ops", "1", "--rounds", "1", "--plot", str(tmp_path / "x.png")
    )
    assert code == 2
    assert "pip install 'stratacache[plot]'" in err


def test_bench_peer_not_installed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "cachetools" else real(name)
    )
    code, out, _ = run(capsys, "bench", "memory://", "--ops", "5", "--rounds", "1")
    assert code == 0
    assert "cachetools: not installed (pip install cachetools)" in out


# ------------------------------------------------------------------ values and files


def test_format_and_parse_values() -> None:
    assert format_value("text") == "text"
    assert format_value(b"bytes") == "bytes"
    assert format_value(b"\xff") == "b'\\xff'"
    assert format_value({"a": (1, 2)}) == "{'a': (1, 2)}"
    assert format_value({"b": {3}, "a": b"x"}, as_json=True) == '{"a": "x", "b": [3]}'
    with pytest.raises(sc.InvalidArgument, match="cannot be shown as JSON"):
        to_json(object())
    with pytest.raises(sc.InvalidArgument, match="not UTF-8"):
        to_json(b"\xff")
    assert raw_bytes("é") == "é".encode()
    assert parse_value("1") == "1"
    assert parse_value("1", as_json=True) == 1
    assert parse_value("1", raw=True) == b"1"
    with pytest.raises(sc.InvalidArgument, match="cannot be combined"):
        parse_value("1", as_json=True, raw=True)


def test_read_entries(tmp_path: Path) -> None:
    jsonl = tmp_path / "e.jsonl"
    jsonl.write_text('{"key": "a", "value": {"x": 1}}\n\n["b", [1, 2]]\n["a", 3]\n')
    assert read_entries(jsonl) == {"a": 3, "b": [1, 2]}
    csv_file = tmp_path / "e.csv"
    csv_file.write_text('key,value\nk1,"one, two"\n\nk2,2\n')
    assert read_entries(csv_file) == {"k1": "one, two", "k2": "2"}
    other = tmp_path / "e.txt"
    other.write_text("k,v\n")
    assert read_entries(other, "csv") == {"k": "v"}


@pytest.mark.parametrize(
    ("name", "content", "fmt", "message"),
    [
        ("e.txt", "", None, "cannot tell the format"),
        ("e.txt", "", "xml", "--format must be one of"),
        ("e.jsonl", "{oops\n", None, "e.jsonl:1: not valid JSON"),
        ("e.jsonl", '["a"]\n', None, "e.jsonl:1: expected"),
        ("e.jsonl", "\n[1, 2]\n", None, "e.jsonl:2: the key must be a string"),
        ("e.csv", "a,b,c\n", None, "e.csv:1: expected 2 columns"),
        ("e.csv", b"\xff\xfe,x\n", None, "is not UTF-8 text"),
        ("absent.csv", None, None, "cannot read"),
    ],
)
def test_read_entries_errors(
    tmp_path: Path, name: str, content: str | bytes | None, fmt: str | None, message: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(sc.InvalidArgument, match=message):
        read_entries(path, fmt)


# ------------------------------------------------------------------ progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_progress_draws_on_a_terminal_only() -> None:
    tty = _Tty()
    with Progress("warm", 4, stream=tty, use_tqdm=False) as bar:
        bar.update(1)
        bar.update(4)
    assert (
        tty.getvalue()
        == "\rwarm [#######-----------------------] 1/4\rwarm [##############################] 4/4\n"
    )
    piped = io.StringIO()
    with Progress("warm", 4, stream=piped, use_tqdm=False) as bar:
        bar.update(4)
    assert piped.getvalue() == ""


def test_tqdm_progress() -> None:
    tty = _Tty()
    with Progress("bench", 2, stream=tty, enabled=True) as bar:
        assert bar._bar is not None
        bar.update(1)
        bar.update(3, total=3)
        assert bar._bar.n == 3
        assert bar._bar.total == 3
    assert "bench" in tty.getvalue()


def test_simulate_keeps_working_with_a_progress_bar(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text("a\nb\na\nc\na\n")
    code, out, err = run(
        capsys, "simulate", "--trace", str(trace), "--policy", "lru", "--size", "2", "--progress", "on"
    )
    assert code == 0
    assert "| lru | 2 | 5 | 2 | 40.00 |" in out
    assert "simulate" in err  # the bar, drawn on stderr
    code, out, err = run(capsys, "simulate", "--trace", str(trace), "--policy", "lru", "--size", "2")
    assert code == 0
    assert err == ""  # not a terminal: no bar


# ------------------------------------------------------------------ warm


def test_warm_from_json_lines_and_csv(
    capsys: pytest.CaptureFixture[str], file_url: str, tmp_path: Path
) -> None:
    jsonl = tmp_path / "entries.jsonl"
    jsonl.write_text('{"key": "user:1", "value": {"name": "Ada"}}\n["user:2", [1, 2]]\n')
    code, out, err = run(capsys, "warm", file_url, "--from", str(jsonl), "--ttl", "60", "--concurrency", "2")
    assert code == 0
    assert out.startswith("warmed 2 of 2 entries in ")
    assert out.endswith("(failed 0, skipped 0)\n")
    assert err == ""  # no bar: stderr is not a terminal
    with sc.Cache(file_url) as cache:
        assert cache.get_many(["user:1", "user:2"]) == {"user:1": {"name": "Ada"}, "user:2": [1, 2]}
        assert 0 < cache.ttl("user:1") <= 60
    data = tmp_path / "entries.data"
    data.write_text("key,value\ncity:1,Paris\n")
    code, out, err = run(capsys, "warm", file_url, "--from", str(data), "--format", "csv", "--progress", "on")
    assert code == 0
    assert "warm" in err  # the bar
    assert run(capsys, "get", file_url, "city:1") == (0, "Paris\n", "")


def test_warm_into_redis(capsys: pytest.CaptureFixture[str], redis_server: Any, tmp_path: Path) -> None:
    url = f"{redis_server.url}?namespace=warmtest"
    entries = tmp_path / "e.csv"
    entries.write_text("".join(f"k{i},{i}\n" for i in range(50)))
    code, out, _ = run(capsys, "warm", url, "--from", str(entries))
    assert code == 0
    assert out.startswith("warmed 50 of 50 entries")
    assert run(capsys, "keys", url, "k4*") == (
        0,
        "k4\nk40\nk41\nk42\nk43\nk44\nk45\nk46\nk47\nk48\nk49\n",
        "",
    )
    with sc.Cache(url) as cache:
        cache.clear()


def test_warm_failures_exit_1_and_are_listed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    entries = tmp_path / "big.jsonl"
    entries.write_text("".join(json.dumps([f"big{i}", "x" * 5000]) + "\n" for i in range(12)))
    code, out, _ = run(capsys, "warm", f"file://{tmp_path / 'small'}?max_bytes=3000", "--from", str(entries))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("warmed 0 of 12 entries in ")
    assert "(failed 12," in lines[0]
    assert lines[1].startswith("  failed: big0: ")
    assert "max_bytes=3000" in lines[1]
    assert lines[-1] == "  ... and 2 more"


def test_warm_bad_files_exit_2(capsys: pytest.CaptureFixture[str], file_url: str, tmp_path: Path) -> None:
    code, out, err = run(capsys, "warm", file_url, "--from", str(tmp_path / "absent.jsonl"))
    assert (code, out) == (2, "")
    assert err.startswith("stratacache warm: cannot read ")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": 1, "value": 2}\n')
    code, _, err = run(capsys, "warm", file_url, "--from", str(bad))
    assert code == 2
    assert err == f"stratacache warm: {bad}:1: the key must be a string, not int\n"


def test_set_nx_stores_when_absent_and_stats_show_the_backend(
    capsys: pytest.CaptureFixture[str], file_url: str
) -> None:
    assert run(capsys, "set", file_url, "fresh", "v", "--nx") == (0, "OK\n", "")
    code, out, _ = run(capsys, "stats", file_url)
    assert code == 0
    assert "items          1\n" in out
    assert "backend.unsafe_paths 0\n" in out
    assert "get_latency    count=" in out


def test_bench_memcached(capsys: pytest.CaptureFixture[str], memcached_server: Any) -> None:
    code, out, _ = run(capsys, "bench", memcached_server.url, "--ops", "20", "--rounds", "1")
    assert code == 0
    assert "pymemcache µs/op" in out
    assert "ratio vs pymemcache" in out


def test_run_bench_checks_its_arguments() -> None:
    from stratacache._cli_bench import run_bench

    with pytest.raises(sc.ConfigurationError, match="--value-size >= 0"):
        run_bench("memory://", value_size=-1)


def test_plain_progress_without_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "tqdm", None)  # an import of it now fails
    tty = _Tty()
    with Progress("warm", 0, stream=tty) as bar:
        assert bar._bar is None
        bar.update(0)
    assert tty.getvalue() == "\rwarm [##############################] 0/0\n"


@pytest.mark.parametrize("argv", [["stats", "memory://"], ["demo"]])
def test_closed_stdout_pipe_ends_quietly(argv: list[str]) -> None:
    # `stratacache stats URL | head -3`: the reader closes the pipe before the output is
    # written. The command ends with status 0 and no BrokenPipeError traceback.
    proc = subprocess.Popen(
        [sys.executable, "-m", "stratacache", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0, stderr
    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr
