"""The optional C helpers (``core/policies/_speedups.c``) against their Python reference.

The C code must leave exactly the state the pure-Python code leaves: the same sketch table
(so the same hash of ``(key, salt)``), the same regions in the same order, the same climber
and sketch counts. Each test drives a pure-Python twin (``_native.speedups`` set to None
around its calls) beside the compiled one and compares everything. CI builds the extension
and sets ``STRATACACHE_REQUIRE_SPEEDUPS=1``, so a build that silently fell back fails here.
"""

from __future__ import annotations

import os
import random
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratacache.core.policies import FrequencySketch, TinyLFUPolicy, _native

T = TypeVar("T")

native = _native.speedups
needs_native = pytest.mark.skipif(native is None, reason="the C speedups are not built here")


@contextmanager
def pure_python() -> Iterator[None]:
    """Run the block on the pure-Python code paths."""
    saved = _native.speedups
    _native.speedups = None  # type: ignore[assignment]
    try:
        yield
    finally:
        _native.speedups = saved


def in_python(call: Callable[[], T]) -> T:
    with pure_python():
        return call()


def test_speedups_are_built_where_required() -> None:
    if os.environ.get("STRATACACHE_REQUIRE_SPEEDUPS", "") in ("", "0"):
        pytest.skip("STRATACACHE_REQUIRE_SPEEDUPS is not set")
    assert native is not None, "the C extension was not built (is a C compiler installed?)"


class Collides:
    """A key whose hash is chosen by the test (-1 becomes -2 in Python, as it must in C)."""

    def __init__(self, h: int) -> None:
        self.h = h

    def __hash__(self) -> int:
        return self.h

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Collides) and other.h == self.h


keys = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.binary(max_size=8),
    st.tuples(st.integers(), st.text(max_size=3)),
    st.floats(allow_nan=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(Collides),
)


@needs_native
@settings(max_examples=150, deadline=None)
@given(
    st.lists(keys, min_size=1, max_size=60),
    st.integers(min_value=0, max_value=2**64),
    st.integers(min_value=1, max_value=3000),
)
def test_sketch_increment_and_frequency_match_python(batch: list[Hashable], salt: int, entries: int) -> None:
    compiled = FrequencySketch(entries, salt=salt)
    reference = FrequencySketch(entries, salt=salt)
    for key in batch * 3:
        compiled.increment(key)
        in_python(lambda key=key: reference.increment(key))  # type: ignore[misc]
        assert compiled.frequency(key) == in_python(lambda key=key: reference.frequency(key))  # type: ignore[misc]
    assert bytes(compiled._table) == bytes(reference._table)
    assert compiled.size == reference.size


@needs_native
def test_sketch_halves_at_the_same_increment_as_python() -> None:
    compiled, reference = FrequencySketch(8, salt=3), FrequencySketch(8, salt=3)
    assert compiled.sample_size == 160
    for i in range(2_000):
        compiled.increment(i % 37)
        in_python(lambda i=i: reference.increment(i % 37))  # type: ignore[misc]
        assert compiled.size == reference.size
    assert bytes(compiled._table) == bytes(reference._table)


def _state(policy: TinyLFUPolicy) -> Any:
    return (
        list(policy._window.items()),
        list(policy._probation.items()),
        list(policy._protected.items()),
        list(policy._window_ghost.items()),
        list(policy._main_ghost.items()),
        bytes(policy._sketch._table),
        policy._sketch.size,
        policy._hits,
        policy._misses,
        policy.window_capacity,
        policy.protected_capacity,
        policy._step,
        policy.weight,
        len(policy),
    )


@needs_native
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("capacity", [4, 24, 300])
def test_tinylfu_with_speedups_equals_pure_python(
    seed: int, capacity: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store's calls, long enough for sketch halvings, promotions and climber steps; batches
    # of buffered hits that name keys evicted since; overwrites with new weights, removals and
    # a resize. The compiled policy and its pure-Python twin must agree at every eviction.
    rng = random.Random(seed)
    compiled = TinyLFUPolicy(capacity, seed=seed)
    reference = TinyLFUPolicy(capacity, seed=seed)
    resident: OrderedDict[Hashable, None] = OrderedDict()
    buffer: list[Hashable] = []
    # The rare paths the C code hands back to Python must all have been taken.
    halvings: list[FrequencySketch] = []
    reset = FrequencySketch.reset

    def counting_reset(sketch: FrequencySketch) -> None:
        halvings.append(sketch)
        reset(sketch)

    monkeypatch.setattr(FrequencySketch, "reset", counting_reset)
    windows = {compiled.window_capacity}
    promoted = False

    def both(call: Callable[[TinyLFUPolicy], T]) -> T:
        result = call(compiled)
        assert in_python(lambda: call(reference)) == result
        return result

    for step in range(30_000):
        roll = rng.random()
        key: Hashable = int(rng.paretovariate(1.1)) if roll < 0.75 else f"s{rng.randrange(3 * capacity)}"
        if step == 15_000:
            both(lambda p: p.resize(max(1, capacity // 2)))
            while len(resident) > max(1, capacity // 2):
                victim = both(lambda p: p.evict())
                del resident[victim]
        if key in resident:
            if roll > 0.97:
                both(lambda p, key=key: p.on_update(key, 1))  # type: ignore[misc]
            elif roll > 0.96:
                both(lambda p, key=key: p.on_remove(key))  # type: ignore[misc]
                del resident[key]
            else:
                buffer.append(key)
                if len(buffer) >= rng.choice((1, 5, 64, 300)):
                    both(lambda p: p.on_access_many(list(buffer), resident))
                    buffer.clear()
            continue
        both(lambda p: p.on_access_many(list(buffer), resident))
        buffer.clear()
        both(lambda p, key=key: p.record_miss(key))  # type: ignore[misc]
        both(lambda p, key=key: p.on_insert(key))  # type: ignore[misc]
        resident[key] = None
        while len(resident) > compiled.capacity:
            victim = both(lambda p: p.evict())
            del resident[victim]
            if rng.random() < 0.3:
                buffer.append(victim)  # a buffered read of a key evicted since: skipped
        windows.add(compiled.window_capacity)
        promoted = promoted or bool(compiled._protected)
        if step % 1000 == 0:
            assert _state(compiled) == _state(reference)
    both(lambda p: p.on_access_many(tuple(buffer), resident))  # any iterable, not only a list
    assert _state(compiled) == _state(reference)
    assert halvings.count(compiled._sketch) >= 1
    assert promoted
    assert capacity < 24 or len(windows) > 2  # the climber moved the window


# -- failure cases of the compiled functions -----------------------------------------------


@needs_native
def test_sketch_functions_refuse_bad_tables_masks_and_keys() -> None:
    assert native is not None
    table = bytearray(4 * 64)
    assert native.sketch_increment(table, "k", 0, 63) is True
    assert native.sketch_frequency(table, "k", 0, 63) == 1
    with pytest.raises(TypeError, match="bytearray"):
        native.sketch_increment(bytes(256), "k", 0, 63)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mask 62"):
        native.sketch_increment(table, "k", 0, 62)  # not a power of two minus one
    with pytest.raises(ValueError, match="mask 127"):
        native.sketch_frequency(table, "k", 0, 127)  # rows past the end of the table
    with pytest.raises(TypeError, match="unhashable"):
        native.sketch_increment(table, ["a list"], 0, 63)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes 4 arguments"):
        native.sketch_frequency(table, "k", 0)  # type: ignore[call-arg]
    assert table.count(0) == 4 * 64 - 4  # the refused calls changed nothing


@needs_native
def test_replay_refuses_bad_arguments_and_passes_errors_through() -> None:
    assert native is not None
    table = bytearray(4 * 64)
    window: OrderedDict[Hashable, int] = OrderedDict(a=1, b=1)
    protected: OrderedDict[Hashable, int] = OrderedDict()

    def replay(batch: Any, tracked: Any = None, protected_: Any = protected) -> tuple[int, int, int, int]:
        return native.tinylfu_replay(
            batch, 0, window if tracked is None else tracked, protected_, window,
            protected.move_to_end, window.move_to_end, table, 0, 63, 100, 100,
        )  # fmt: skip

    assert replay(["a", "zz"]) == (2, 1, 1, 0)
    assert list(window) == ["b", "a"]
    with pytest.raises(TypeError, match="keys must be a list"):
        replay(("a",))
    with pytest.raises(TypeError, match="must be dicts"):
        replay(["a"], protected_=[])
    with pytest.raises(TypeError, match="unhashable"):
        replay([["a list"]])
    with pytest.raises(TypeError, match="takes 12 arguments"):
        native.tinylfu_replay([])  # type: ignore[call-arg]

    class Boom(Exception):
        pass

    class Tracked:
        def __contains__(self, key: object) -> bool:
            raise Boom(key)

    with pytest.raises(Boom):
        replay(["a"], tracked=Tracked())
    # A generic container works through `in`, and a key in neither region stops the replay
    # after counting it (probation: Python promotes it).
    assert replay(["b", "p"], tracked={"b", "p"}) == (1, 2, 1, 1)
