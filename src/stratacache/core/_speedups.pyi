"""Types of the optional compiled hot paths in ``_speedups.c``."""

from collections.abc import Callable, Container, Hashable, Iterator
from types import TracebackType
from typing import Any, overload

def sketch_increment(table: bytearray, key: Hashable, salt: int, mask: int) -> bool: ...
def sketch_frequency(table: bytearray, key: Hashable, salt: int, mask: int) -> int: ...
def tinylfu_replay(
    keys: list[Hashable],
    start: int,
    tracked: Container[Hashable],
    protected: dict[Hashable, int] | LinkedMap,
    window: dict[Hashable, int] | LinkedMap,
    move_protected: Callable[[Hashable], object],
    move_window: Callable[[Hashable], object],
    table: bytearray,
    salt: int,
    mask: int,
    budget: int,
    left: int,
) -> tuple[int, int, int, int]: ...

class TinyLFUCounters:
    """The integer attributes of ``TinyLFUPolicy``, as C fields (its base class)."""

    weight: int
    capacity: int
    _entries: int
    _window_weight: int
    _protected_weight: int
    _hits: int
    _misses: int
    _window_ghost_hits: int
    _main_ghost_hits: int
    _window_max: int
    _protected_max: int
    _climb_period: int
    _grow_at: int

class SketchCounters:
    """The integer attributes of ``FrequencySketch``, as C fields (its base class)."""

    size: int
    sample_size: int

class LinkedMap:
    """An insertion-ordered map with the ``OrderedDict`` operations TinyLFU uses."""

    def __len__(self) -> int: ...
    def __contains__(self, key: object, /) -> bool: ...
    def __getitem__(self, key: Hashable, /) -> Any: ...
    def __setitem__(self, key: Hashable, value: Any, /) -> None: ...
    def __delitem__(self, key: Hashable, /) -> None: ...
    def __iter__(self) -> Iterator[Hashable]: ...
    def get(self, key: Hashable, default: Any = None, /) -> Any: ...
    @overload
    def pop(self, key: Hashable, /) -> Any: ...
    @overload
    def pop(self, key: Hashable, default: Any, /) -> Any: ...
    def popitem(self, last: bool = True) -> tuple[Hashable, Any]: ...
    def move_to_end(self, key: Hashable, last: bool = True) -> None: ...
    def clear(self) -> None: ...
    def keys(self) -> list[Hashable]: ...
    def values(self) -> list[Any]: ...
    def items(self) -> list[tuple[Hashable, Any]]: ...

class StoreLock:
    """A non-reentrant lock with ``threading.Lock``'s interface (the memory store's lock)."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...
    def release(self) -> None: ...
    def locked(self) -> bool: ...
    def __enter__(self) -> bool: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

class FusedGet:
    """The hit path of ``MemoryStore.fused_get``, called like ``Cache.get``."""

    def __call__(self, key: Any, default: Any = None, /) -> Any: ...

def fused_get(
    data: dict[str, Any],
    prefix: str,
    hooks: Any,
    stats: Any,
    store: Any,
    clock: Callable[[], float],
    access: Callable[[str], object] | None,
    native_types: frozenset[type],
    slow: Callable[..., Any],
    mask: int,
    sliding: bool,
    miss_is_final: bool,
    entry: object,
) -> FusedGet: ...
def lfu_replay(
    keys: list[Hashable],
    start: int,
    tracked: Container[Hashable],
    where: dict[Hashable, Any],
    node_type: type,
    bucket_type: type,
    link_after: Callable[[Any, int], Any],
    left: int,
) -> tuple[int, int]: ...

class FusedSet:
    """The inline path of ``MemoryStore.fused_set``, called like ``Cache.set``."""

    def __call__(self, key: Any, value: Any, ttl: Any = ..., /) -> None: ...

def fused_set(
    data: dict[str, Any],
    prefix: str,
    hooks: Any,
    owner: Any,
    stats: Any,
    store: Any,
    lock: Any,
    clock: Callable[[], float],
    unset: object,
    slow: Callable[..., None],
    mask: int,
    entry: object,
    no_key: object,
) -> FusedSet: ...
def tinylfu_record_miss(policy: object, key: Hashable) -> None: ...
def tinylfu_insert(policy: object, key: Hashable, no_key: object) -> None: ...
def tinylfu_evict(policy: object) -> Hashable: ...
def tinylfu_update(policy: object, key: Hashable) -> None: ...
