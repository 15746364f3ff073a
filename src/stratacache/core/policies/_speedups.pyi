"""Types of the optional compiled helpers in ``_speedups.c``."""

from collections.abc import Callable, Container, Hashable

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
