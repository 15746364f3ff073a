"""A count-min sketch of 4-bit counters with periodic halving: TinyLFU's frequency filter.

It estimates how often each key was seen recently, in a fixed amount of memory whatever the
number of distinct keys, as Caffeine's ``FrequencySketch`` does:

* **Depth 4.** Four rows of counters; a key has one counter per row and its estimate is the
  smallest of the four (collisions only ever inflate a counter, so the minimum is the best
  guess). The row index comes from one mixed 64-bit hash by double hashing,
  ``(a + i*b) mod width`` with an odd ``b``.
* **Width.** Each row has ``4 x`` the expected number of entries, rounded up to a power of two
  (so indexing is a mask): 16 counters per entry in all, Caffeine's proportion.
* **4-bit counters.** A counter saturates at 15, like Caffeine's nibbles. They are stored one
  per byte rather than two: in Python the shifts and masks of packing cost more time than the
  memory they save.
* **Conservative update** (Estan and Varghese): an increment raises only the counters that hold
  the current minimum. The estimate is the same as incrementing all four, but counters shared
  with other keys are inflated less, which sharpens the estimates of cold keys.
* **Aging ("reset").** After ``sample_size = 10 x`` entries increments, every counter is halved.
  This keeps the sketch a picture of the recent past, so a key that was popular long ago
  fades. ``bytearray.translate`` halves the whole table in one C call, and the number of odd
  counters (whose halves were lost to rounding) is subtracted as in Caffeine.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["FrequencySketch"]

_MAX = 15
_M64 = (1 << 64) - 1
# The 64-bit golden-ratio multiplier (Fibonacci hashing): spreads consecutive ints, whose
# Python hash is the int itself, over the whole word.
_MIX = 0x9E3779B97F4A7C15
_HALVE = bytes(v >> 1 for v in range(256))
_ODD = bytes(v & 1 for v in range(256))
# Counters per row for each expected entry (4 rows, so 16 counters per entry, as Caffeine).
_WIDTH_FACTOR = 4
_MIN_WIDTH = 64
# Caps the table at 4 x 2**26 bytes (256 MiB) however large a capacity is asked for.
_MAX_WIDTH = 1 << 26
_SAMPLE_FACTOR = 10
_CONSERVATIVE = True


def _ceil_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


class FrequencySketch:
    """Estimates recent access counts (0-15) of keys; see the module docstring for the design.

    ``expected_entries`` sizes the table (the number of keys the cache holds) and the reset
    period; ``salt`` perturbs the hash so another instance's collisions differ.
    """

    __slots__ = ("_mask", "_row1", "_row2", "_row3", "_salt", "_table", "entries", "sample_size", "size")

    def __init__(self, expected_entries: int, *, salt: int = 0) -> None:
        """Create an all-zero sketch for about ``expected_entries`` keys."""
        self._salt = salt & _M64
        self.entries = 0
        self.ensure_capacity(expected_entries)

    def ensure_capacity(self, expected_entries: int) -> None:
        """Grow (and zero) the table if it is sized for fewer than ``expected_entries`` keys.

        As in Caffeine, growing forgets every count: rehashing old counters into a wider table
        is not possible, and a growing cache rebuilds its history quickly.
        """
        expected_entries = max(1, expected_entries)
        if expected_entries <= self.entries:
            return
        width = min(max(_ceil_pow2(expected_entries * _WIDTH_FACTOR), _MIN_WIDTH), _MAX_WIDTH)
        self.entries = expected_entries
        self._table = bytearray(4 * width)
        self._mask = width - 1
        self._row1 = width
        self._row2 = 2 * width
        self._row3 = 3 * width
        #: Increments between two halvings.
        self.sample_size = _SAMPLE_FACTOR * expected_entries
        #: Increments since the last halving (as corrected by the halving).
        self.size = 0

    @property
    def width(self) -> int:
        """Counters per row."""
        return self._mask + 1

    def frequency(self, key: Hashable) -> int:
        """The estimated number of recent occurrences of ``key``, 0 to 15."""
        h = ((hash(key) ^ self._salt) * _MIX) & _M64
        h ^= h >> 29
        b = (h >> 32) | 1
        mask = self._mask
        t = self._table
        c = t[h & mask]
        c1 = t[self._row1 + ((h + b) & mask)]
        c2 = t[self._row2 + ((h + 2 * b) & mask)]
        c3 = t[self._row3 + ((h + 3 * b) & mask)]
        # Conditional expressions: cheaper than a call to min() on this hot path.
        c = c if c < c1 else c1
        c2 = c2 if c2 < c3 else c3
        return c if c < c2 else c2

    def increment(self, key: Hashable) -> None:
        """Count one occurrence of ``key`` (conservative update, saturating at 15)."""
        h = ((hash(key) ^ self._salt) * _MIX) & _M64
        h ^= h >> 29
        b = (h >> 32) | 1
        mask = self._mask
        t = self._table
        i0 = h & mask
        i1 = self._row1 + ((h + b) & mask)
        i2 = self._row2 + ((h + 2 * b) & mask)
        i3 = self._row3 + ((h + 3 * b) & mask)
        c0 = t[i0]
        c1 = t[i1]
        c2 = t[i2]
        c3 = t[i3]
        m = c0 if c0 < c1 else c1
        m23 = c2 if c2 < c3 else c3
        m = m if m < m23 else m23
        if m == _MAX:
            # Saturated: nothing changes, and (as in Caffeine) it does not count toward a reset.
            return
        if not _CONSERVATIVE:
            if c0 < _MAX:
                t[i0] = c0 + 1
            if c1 < _MAX:
                t[i1] = c1 + 1
            if c2 < _MAX:
                t[i2] = c2 + 1
            if c3 < _MAX:
                t[i3] = c3 + 1
            self.size += 1
            if self.size >= self.sample_size:
                self.reset()
            return
        # Conservative update: only the counters at the minimum rise.
        if c0 == m:
            t[i0] = m + 1
        if c1 == m:
            t[i1] = m + 1
        if c2 == m:
            t[i2] = m + 1
        if c3 == m:
            t[i3] = m + 1
        self.size += 1
        if self.size >= self.sample_size:
            self.reset()

    def reset(self) -> None:
        """Halve every counter (the aging step)."""
        table = self._table
        odd = table.translate(_ODD).count(1)
        self._table = table.translate(_HALVE)
        # Each key left four odd counters that lost half a count to rounding (Caffeine's rule).
        self.size = max(0, (self.size - (odd >> 2)) >> 1)

    def clear(self) -> None:
        """Zero every counter."""
        self._table = bytearray(len(self._table))
        self.size = 0
