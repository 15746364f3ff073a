"""The write-behind queue's pure logic against a model: one entry per key, oldest key first."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stratacache.core.write_queue import WriteQueue

KEYS = st.sampled_from(["a", "b", "c", "d", "e"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), KEYS, st.sampled_from(["store", "delete"]), st.integers(0, 99)),
        st.tuples(st.just("take"), st.integers(1, 3)),
        st.tuples(st.just("take_all")),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(maxsize=st.integers(1, 4), ops=OPS)
def test_queue_matches_a_model(maxsize: int, ops: list[tuple[Any, ...]]) -> None:
    queue = WriteQueue(maxsize)
    model: dict[str, tuple[str, Any, float]] = {}  # key -> (operation, value, first queued at)
    for now, op in enumerate(ops):
        if op[0] == "put":
            _, key, operation, value = op
            fits = key in model or len(model) < maxsize
            assert queue.has_room_for(key) == fits
            if not fits:
                continue  # the strategy waits or raises instead of putting
            queue.put(key, operation, value, float(now))
            first = model[key][2] if key in model else float(now)
            model[key] = (operation, value, first)  # replaced in place: its turn is kept
        else:
            count = len(model) if op[0] == "take_all" else op[1]
            batch = queue.take_all() if op[0] == "take_all" else queue.take(count)
            expected = list(model)[:count]
            assert [w.key for w in batch] == expected
            for write in batch:
                operation, value, first = model.pop(write.key)
                assert (write.operation, write.value, write.enqueued_at) == (operation, value, first)
        assert len(queue) == len(model)
        assert queue.oldest() == (next(iter(model.values()))[2] if model else None)
        for key in "abcde":
            pending = queue.get(key)
            assert (pending is None) == (key not in model)
