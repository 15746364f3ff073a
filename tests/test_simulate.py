"""The trace simulator: trace reading, size specs, replay results and the command line."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from stratacache import ConfigurationError
from stratacache.core.simulate import (
    SimResult,
    format_table,
    main,
    read_trace,
    resolve_size,
    simulate,
    simulate_many,
)

TRACE = "1\n2\n*\n3\n\n1\n  4  \n2\n*\n5\n1\n"
KEYS = ["1", "2", "3", "1", "4", "2", "5", "1"]


@pytest.fixture
def plain_trace(tmp_path: Path) -> Path:
    path = tmp_path / "plain.trace"
    path.write_text(TRACE)
    return path


@pytest.fixture
def gz_trace(tmp_path: Path) -> Path:
    # A misleading name: gzip is recognised by its magic bytes, not by the suffix.
    path = tmp_path / "compressed.txt"
    path.write_bytes(gzip.compress(TRACE.encode()))
    return path


def test_read_plain_trace_skips_stars_and_blank_lines(plain_trace: Path) -> None:
    assert list(read_trace(plain_trace)) == KEYS


def test_read_gzip_trace_by_magic_bytes(gz_trace: Path) -> None:
    assert list(read_trace(gz_trace)) == KEYS
    assert list(read_trace(str(gz_trace))) == KEYS


def test_read_empty_trace(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert list(read_trace(path)) == []


def test_lru_hit_count_by_hand() -> None:
    # size 2, LRU:  a   b    a    c    b    a    c    c    a
    # resident:    a   ab   ba   ac   cb   ba   ac   ac   ca   (least recent first)
    # hit?         -   -    H    -    -    -    -    H    H    -> 3 hits of 9
    result = simulate(list("abacbacca"), "lru", 2)
    assert result == SimResult("lru", 2, 9, 3, 3 / 9)


def test_fifo_hit_count_by_hand() -> None:
    # size 2, FIFO: a b a(H) c(evicts a) b(H) a(evicts b) c(H) c(H) a(H) -> 5 hits
    assert simulate(list("abacbacca"), "fifo", 2).hits == 5


def test_simulate_replays_the_trace_file(plain_trace: Path) -> None:
    # size 2, LRU over 1 2 3 1 4 2 5 1: every request misses
    assert simulate(read_trace(plain_trace), "lru", 2).hits == 0
    # size 3: 1 2 3 1(H) 4(evicts 2) 2(evicts 3) 5(evicts 1) 1 -> 1 hit
    assert simulate(read_trace(plain_trace), "lru", 3).hits == 1


def test_simulate_empty_trace() -> None:
    assert simulate([], "tinylfu", 10) == SimResult("tinylfu", 10, 0, 0, 0.0)


def test_simulate_passes_policy_kwargs() -> None:
    keys = [i % 50 for i in range(2000)]
    first = simulate(keys, "random", 10, seed=3)
    assert first == simulate(keys, "random", 10, seed=3)
    with pytest.raises(ConfigurationError):
        simulate(keys, "lru", 10, seed=3)


def test_simulate_unknown_policy() -> None:
    with pytest.raises(ConfigurationError, match="'nope'"):
        simulate(["a"], "nope", 10)


def test_simulate_many_every_policy_at_every_size() -> None:
    keys = [i % 30 for i in range(600)]  # a loop of 30 distinct keys
    results = simulate_many(keys, ["lru", "fifo"], [10, "100%"])
    assert [(r.policy, r.size) for r in results] == [("lru", 10), ("lru", 30), ("fifo", 10), ("fifo", 30)]
    assert results[0].hits == 0  # a loop larger than an LRU cache never hits
    assert results[1].hits == 600 - 30  # everything fits: only the first pass misses


@pytest.mark.parametrize(
    ("spec", "distinct", "size"),
    [
        (50, 1000, 50),
        ("50", 1000, 50),
        ("2%", 1000, 20),
        ("10%", 9939, 993),
        ("0.5%", 100, 8),
        ("100%", 30, 30),
    ],
)
def test_resolve_size(spec: int | str, distinct: int, size: int) -> None:
    assert resolve_size(spec, distinct) == size


@pytest.mark.parametrize("spec", [0, -3, "0", "abc", "%", "0%", "150%", "-2%", 1.5, True])
def test_resolve_size_rejects(spec: object) -> None:
    with pytest.raises(ConfigurationError, match="size"):
        resolve_size(spec, 100)  # type: ignore[arg-type]


def test_format_table() -> None:
    table = format_table([SimResult("lru", 2, 9, 3, 1 / 3)], title="t")
    assert table.splitlines() == [
        "t",
        "",
        "| policy | size | requests | hits | hit ratio % |",
        "|---|---:|---:|---:|---:|",
        "| lru | 2 | 9 | 3 | 33.33 |",
    ]


def test_main_prints_a_table(gz_trace: Path) -> None:
    out = io.StringIO()
    status = main(
        ["--trace", str(gz_trace), "--policy", "lru", "--policy", "fifo", "--size", "3", "--size", "40%"],
        out=out,
    )
    assert status == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == f"trace {gz_trace}: 8 requests, 5 distinct keys"
    # 40% of 5 distinct keys is below the floor of 8
    assert "| lru | 3 | 8 | 1 | 12.50 |" in lines
    assert "| lru | 8 | 8 | 3 | 37.50 |" in lines
    assert "| fifo | 3 | 8 | 2 | 25.00 |" in lines  # the hit on 1 does not save it from 4
    assert len([line for line in lines if line.startswith(("| lru", "| fifo"))]) == 4


def test_main_defaults_to_every_policy_at_2_and_10_percent(plain_trace: Path) -> None:
    out = io.StringIO()
    assert main(["--trace", str(plain_trace)], out=out) == 0
    rows = [line for line in out.getvalue().splitlines() if line.startswith("| ") and "policy" not in line]
    assert len(rows) == 5 * 2
    assert {row.split("|")[1].strip() for row in rows} == {"lru", "lfu", "fifo", "random", "tinylfu"}


def test_main_writes_to_stdout_by_default(plain_trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--trace", str(plain_trace), "--policy", "lru", "--size", "2"]) == 0
    assert "| lru | 2 | 8 | 0 | 0.00 |" in capsys.readouterr().out


def test_main_unknown_policy(plain_trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--trace", str(plain_trace), "--policy", "bogus"]) == 2
    err = capsys.readouterr().err
    assert "'bogus'" in err
    assert "tinylfu" in err


def test_main_bad_size(plain_trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--trace", str(plain_trace), "--size", "lots"]) == 2
    assert "'lots'" in capsys.readouterr().err


def test_main_missing_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--trace", str(tmp_path / "nope.gz")]) == 2
    assert "nope.gz" in capsys.readouterr().err


def test_main_corrupt_gzip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.gz"
    path.write_bytes(b"\x1f\x8b" + b"not really gzip")
    assert main(["--trace", str(path)]) == 2
    assert "error" in capsys.readouterr().err


def test_main_requires_a_trace(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "--trace" in capsys.readouterr().err
