"""Types of the optional compiled hot paths in ``_speedups.c``."""

from collections.abc import Callable, Container, Hashable
from typing import Any

def sketch_increment(table: bytearray, key: Hashable, salt: int, mask: int) -> bool: ...
def sketch_frequency(table: bytearray, key: Hashable, salt: int, mask: int) -> int: ...
def tinylfu_replay(
    keys: list[Hashable],
    start: int,
    tracked: Container[Hashable],
    protected: dict[Hashable, int],
    window: dict[Hashable, int],
    move_protected: Callable[[Hashable], object],
    move_window: Callable[[Hashable], object],
    table: bytearray,
    salt: int,
    mask: int,
    budget: int,
    left: int,
) -> tuple[int, int, int, int]: ...

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
