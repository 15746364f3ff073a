"""``tinylfu``: adaptive W-TinyLFU, the policy of Caffeine (Java), after Einziger, Friedman,
Manes, "TinyLFU: A Highly Efficient Cache Admission Policy" (2017) and Caffeine's
``BoundedLocalCache`` (``evictFromWindow``/``evictFromMain``/``admit``/``climb``).

Layout, all measured in weight::

    new key -> [ window LRU ] --candidate--> [ probation | protected ]  = main SLRU
                  ~1% at start                 ~20% of main   80% of main

* A new key enters the **window**, a small LRU. Keys that overflow the window become
  *candidates* for the **main** region and go to the most recent end of **probation**.
* When the cache is over capacity, a candidate competes with probation's least recently used
  key (the *victim*). A :class:`FrequencySketch` estimates both keys' recent popularity; the
  candidate is admitted (and the victim evicted) only if it is more popular; a *cold* candidate
  (estimate <= 2) must lead by two, not one (see below). Otherwise the
  candidate itself is evicted, so :meth:`TinyLFUPolicy.evict` may return a key inserted a
  moment ago (it just left the window), or the key just inserted if it is heavier than the
  window: admission rejected it. One-hit wonders and scans therefore cannot flush the keys
  that the cache has learnt are popular.
* **Cold candidates lead by two.** At low counts a lead of one is mostly timing, not
  popularity: the candidate was counted a moment ago, when it was requested, while the victim
  may be about to be requested (a sweep or a loop over more keys than the cache holds: every
  key has the same count, yet the candidate leads by one, and admitting it churns main for
  nothing). So a candidate whose estimate is at most 2 must beat the victim by two: a key seen
  once does not displace a victim seen never, nor a key seen twice one seen once. Warmer
  candidates need the usual lead of one. Measured on the reference rows, together with the
  sketch's halving every 10 x entries (see sketch.py; it only pays with this rule): mean +0.56
  points; zigzag at 10% +1.9, multi2 at 10% +1.2, loop/scan/cs/gli/ps at 2% +0.4 to +2.1;
  worst cpp at 2% -1.1, gli at 10% -0.4, multi1 at 2% -0.4.
* **Hash flooding.** An attacker who can make a victim look hot (by colliding its counters)
  could keep every candidate out. As in Caffeine, a candidate that is warm (estimate >= 6)
  but not more popular than the victim is still admitted with probability 1/128.
* A hit on a probation key promotes it to **protected** (80% of main); protected overflow is
  demoted, least recent first, back to probation's most recent end. So main is a segmented
  LRU that keeps keys seen at least twice since they were admitted.
* **Hill climber.** The best window size depends on the workload: recency-heavy traces want a
  large window (a pure LRU in the limit), frequency-heavy traces a small one. Every sample
  period the climber moves the window by one step. The step starts at 6.25% of capacity and
  decays by 0.98 each period so the size settles (Caffeine's schedule; its restart of the step
  on a 5-point change of hit rate is not kept, as the direction no longer comes from the hit
  rate). The window grows at
  the expense of protected and shrinks into it; at most 1,000 keys move between regions per
  adjustment, so the work stays O(1) amortized.
* **Which way to step: ghost hits, not hit-rate differences.** Caffeine compares the hit rate
  of a period with the previous one and turns around when it dropped. Measured here, that
  signal is mostly noise: the workload's own drift between periods (sprite at 10%: +-10
  points) dwarfs what a step is worth (~1 point), so the climber walks at random. Instead the
  policy keeps two small *ghost* lists (keys only, no values), as ARC does: the keys most
  recently evicted from the window side (candidates that lost admission) and from main
  (probation victims). A miss on a window ghost is a hit that a slightly larger window would
  have had; a miss on a main ghost, one that a slightly larger main would have had. Each ghost
  holds 6.25% of the keys held (the first step), so its hits estimate the gain of one step
  either way, directly, in the same period. The window moves towards the side with more ghost
  hits, and holds still on a tie; a narrow lead moves it less than a full step (the step is
  scaled by ``2 x (window - main) / (window + main)``, clamped to one step, so a full step
  needs a 3:1 lead; +0.05 points of mean hit ratio over all-or-nothing steps, and no row
  lost more than 0.11). This costs a dict lookup per miss and a dict insert per eviction; the
  hit path is unchanged. With a signal this direct the period can be shorter: ``3 x``
  capacity requests (Caffeine: ``10 x``), never fewer than 2,000.

What the climber cannot do (measured on the reference traces, see
``benchmarks/bench_hit_ratio.py``): on zigzag (a sweep up and down 2,000 keys) the optimum is a
window of ~99% (an LRU), but the ghost signal there is a few reversal points per sweep, not
enough to walk the window that far. What saves zigzag is admission (cold candidates lead by
two, above): main then keeps the keys it has, each hit once per sweep, instead of churning.
On sprite at 10% a fixed window of 80% matches LRU; the climber gets there about two thirds
into the trace, and loses ~1 point on the way.

Frequencies count hits, misses (:meth:`~TinyLFUPolicy.record_miss`) and overwrites: as in
Caffeine every request counts, hit or miss (counting hits only measured 6 to 20 points worse
on frequency-heavy traces). An ``on_insert`` right after ``record_miss`` of the same key is
not counted twice; an ``on_insert`` without one (a set without a get) is counted.

Weights are supported throughout: regions are bounded in weight, a key heavier than the
window enters at its least recent end (to leave first, as in Caffeine), and a candidate
heavier than the whole capacity is evicted at once. ``seed=`` fixes the hash salt and the
admission coin for reproducible runs; ``adaptive=False`` freezes the window at its start size.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Container, Hashable, Iterable
from typing import ClassVar, cast

from ..._exceptions import ConfigurationError
from .. import _native
from .base import Policy, check_capacity, check_weight
from .sketch import _MAX as _COUNTER_MAX
from .sketch import FrequencySketch

__all__ = ["TinyLFUPolicy"]

# Caffeine's constants (BoundedLocalCache).
_PERCENT_MAIN = 0.99  # so the window starts at ~1% of capacity
_PERCENT_MAIN_PROTECTED = 0.80
_STEP_PERCENT = 0.0625  # first climber step: 6.25% of capacity
_STEP_DECAY = 0.98
_TRANSFER_LIMIT = 1000  # keys moved between regions per adjustment, to bound the work
_ADMIT_HASHDOS_THRESHOLD = 6  # a candidate this warm may be admitted at random...
_ADMIT_RANDOM_MASK = 127  # ...with probability 1/128
# A candidate this cold must beat the victim by two, not one: at such counts a lead of one is
# the timing of the candidate's own request (see the module docstring).
_ADMIT_COLD_MAX = 2
# The climber's sample period in requests per expected entry. Caffeine's is 10 (its sample
# size), for a hit-rate comparison that needs long periods to average out noise; the ghost
# signal (see the module docstring) is direct, and 3 lets a recency-heavy trace reach a large
# window early (sprite at 10%: -3.6 -> -0.9 points against LRU; the mean over the reference
# rows +0.2 points; factors 5 and 10 measured in between).
_CLIMB_FACTOR = 3
# ... and never fewer requests than this, so that a period holds a few ghost hits.
_MIN_CLIMB_PERIOD = 2000

# The sketch is sized for the keys the cache actually holds, up to capacity (unit weights):
# a cache with a large capacity that stays small does not pay for a large table.
_INITIAL_SKETCH_ENTRIES = 1024

# Each ghost list holds this share of the keys held (at least _MIN_GHOST): the climber's first
# step, so ghost hits measure what one step either way would gain.
_GHOST_SHARE = _STEP_PERCENT
_MIN_GHOST = 8

# "No last miss": record_miss's key, cleared by on_insert.
NO_KEY = object()

# tinylfu_replay's "stopped" code for a key it counted but left for Python to move (see
# _speedups.c): a halving is due, or the key is in probation.
_REPLAY_MID_KEY = 1


def _ordered() -> OrderedDict[Hashable, int]:
    """A region or a ghost list: key -> weight, least recent first.

    With the C helpers, their ``LinkedMap``: the subset of ``OrderedDict`` this module uses
    (``in``, ``[]``, ``del``, iteration, ``pop``, ``popitem(last=False)``, ``move_to_end``,
    ``clear``, ``items``), whose order the helpers reach without method calls (an evicting
    write moves keys between these maps three times; see _linkedmap.h). Without them, an
    ``OrderedDict``. The code here works on either; the type names the one it is modelled on.
    """
    native = _native.speedups
    if native is None:
        return OrderedDict()
    return cast("OrderedDict[Hashable, int]", native.LinkedMap())


class _Counters:
    """TinyLFUPolicy's integer attributes, as slots."""

    __slots__ = (
        "_climb_period",
        "_entries",
        "_grow_at",
        "_hits",
        "_main_ghost_hits",
        "_misses",
        "_protected_max",
        "_protected_weight",
        "_window_ghost_hits",
        "_window_max",
        "_window_weight",
        "capacity",
        "weight",
    )

    capacity: int
    weight: int
    _climb_period: int
    _entries: int
    _grow_at: int
    _hits: int
    _main_ghost_hits: int
    _misses: int
    _protected_max: int
    _protected_weight: int
    _window_ghost_hits: int
    _window_max: int
    _window_weight: int


class TinyLFUPolicy(Policy, _Counters):
    """Adaptive W-TinyLFU: LRU window, frequency-filtered admission, SLRU main, hill climber."""

    name: ClassVar[str] = "tinylfu"
    tracks_access: ClassVar[bool] = True

    # Slots, for compactness and faster attribute access; the integers are in the base class.
    __slots__ = (
        "_adaptive",
        "_candidates",
        "_increment",
        "_last_miss",
        "_main_ghost",
        "_probation",
        "_protected",
        "_rng",
        "_sketch",
        "_step",
        "_warm",
        "_weighted",
        "_window",
        "_window_ghost",
        "_window_share",
    )

    def __init__(
        self,
        capacity: int,
        *,
        seed: int | None = None,
        adaptive: bool = True,
        window: float = 1 - _PERCENT_MAIN,
    ) -> None:
        """Create an empty policy.

        ``window`` is the starting share of capacity for the admission window (0 < window < 1);
        ``adaptive=False`` keeps it there instead of letting the hill climber move it.
        """
        self.capacity = check_capacity(capacity)
        if isinstance(window, bool) or not (isinstance(window, float | int) and 0 < window < 1):
            raise ConfigurationError(f"tinylfu window must be a fraction in (0, 1), got {window!r}")
        self._window_share = float(window)
        self._adaptive = adaptive
        self._rng = random.Random(seed)
        self.weight = 0
        self._entries = 0
        self._weighted = False
        self._window = _ordered()  # key -> weight, LRU first
        self._probation = _ordered()
        self._protected = _ordered()
        self._window_weight = 0
        self._protected_weight = 0
        # Keys moved from the window to probation by the last insert: they compete for
        # admission in the evict() calls that follow it. Newest last.
        self._candidates: list[Hashable] = []
        self._last_miss: object = NO_KEY
        # Ghosts: keys (-> weight) recently evicted from the window side (candidates that lost
        # admission, or window keys evicted directly) and from main, oldest first; and the
        # weight of the misses that found their key in each during the current sample period.
        self._window_ghost = _ordered()
        self._main_ghost = _ordered()
        self._window_ghost_hits = 0
        self._main_ghost_hits = 0
        self._sketch = FrequencySketch(
            min(self.capacity, _INITIAL_SKETCH_ENTRIES), salt=self._rng.getrandbits(64)
        )
        self._increment = self._sketch.increment
        self._grow_at = self._next_growth()
        self._hits = 0
        self._misses = 0
        self._warm = False
        self._configure()

    def _configure(self) -> None:
        """Set region bounds and climber for ``self.capacity`` (Caffeine's ``setMaximumSize``)."""
        capacity = self.capacity
        self._window_max = max(1, round(capacity * self._window_share))
        if self._window_max >= capacity > 1:
            self._window_max = capacity - 1
        self._protected_max = int(_PERCENT_MAIN_PROTECTED * (capacity - self._window_max))
        # Negative: the first move, if the hit rate improves, shrinks the window further
        # (most workloads favour frequency); a worse period flips the direction.
        self._step = -_STEP_PERCENT * capacity
        self._climb_period = max(_MIN_CLIMB_PERIOD, _CLIMB_FACTOR * min(capacity, self._sketch.entries))
        self._hits = 0
        self._misses = 0

    # -- introspection, for tests and tuning ----------------------------------------------

    @property
    def window_capacity(self) -> int:
        """The current maximum weight of the admission window (moved by the hill climber)."""
        return self._window_max

    @property
    def protected_capacity(self) -> int:
        """The current maximum weight of the protected segment of main."""
        return self._protected_max

    @property
    def sketch(self) -> FrequencySketch:
        """The frequency sketch (read it; do not feed it)."""
        return self._sketch

    def frequency(self, key: Hashable) -> int:
        """The sketch's estimate of how often ``key`` was seen recently (0-15)."""
        return self._sketch.frequency(key)

    def region(self, key: Hashable) -> str | None:
        """``"window"``, ``"probation"`` or ``"protected"``; ``None`` when ``key`` is not tracked."""
        if key in self._window:
            return "window"
        if key in self._probation:
            return "probation"
        if key in self._protected:
            return "protected"
        return None

    # -- the policy -----------------------------------------------------------------------

    def record_miss(self, key: Hashable) -> None:
        """Count a miss on ``key`` in the sketch and in the climber's sample."""
        self._increment(key)
        self._last_miss = key
        self._ghost_check(key)
        self._misses += 1
        if self._hits + self._misses >= self._climb_period:
            self._climb()

    def on_insert(self, key: Hashable, weight: int = 1) -> None:
        """Put ``key`` at the most recent end of the window; window overflow becomes candidates."""
        if weight != 1 or weight is True:
            check_weight(weight)
            self._weighted = True
        last = self._last_miss
        self._last_miss = NO_KEY
        # A set without a get first: count the request here. After record_miss(key) it was
        # already counted, and counting it twice would make every new key look warm.
        if last is not key and last != key:
            self._increment(key)
            self._ghost_check(key)
            self._misses += 1
            if self._hits + self._misses >= self._climb_period:
                self._climb()
        window = self._window
        window[key] = weight
        if weight > self._window_max:
            # Too heavy for the window: place it to leave the window first (Caffeine).
            window.move_to_end(key, last=False)
        self._window_weight += weight
        self.weight += weight
        self._entries += 1
        if self._entries >= self._grow_at:
            self._grow_sketch()
        # Caffeine's evictFromWindow: the overflow, least recent first, becomes the candidates
        # that the evict() calls following this insert weigh against probation's victims.
        self._candidates.clear()
        if self._window_weight > self._window_max:
            self._spill_window()

    def on_access(self, key: Hashable) -> None:
        """A hit: count it, and refresh ``key`` in its region (probation promotes to protected)."""
        self._increment(key)
        self._refresh(key)
        self._hits += 1
        if self._hits + self._misses >= self._climb_period:
            self._climb()

    def on_access_many(self, keys: Iterable[Hashable], tracked: Container[Hashable]) -> None:
        """:meth:`on_access` for each key in ``tracked``, oldest first.

        The store's read buffer replays every hit through here, so this is most of a hit's
        cost. With the C helpers (``_native``) the common step — count the key, move it to
        the recent end of protected or the window — runs in C, which hands the rare ones back
        (a halving of the sketch, a promotion from probation, a climber step); without them,
        :meth:`_replay_python` does it all. Same effect, in the same order, as ``on_access``
        per key, either way.
        """
        native = _native.speedups
        if native is None:
            self._replay_python(keys, tracked)
            return
        batch = keys if type(keys) is list else list(keys)
        replay = native.tinylfu_replay
        sketch = self._sketch
        protected = self._protected
        window = self._window
        move_protected = protected.move_to_end
        move_window = window.move_to_end
        index = 0
        end = len(batch)
        while index < end:
            index, counted, hits, stopped = replay(
                batch,
                index,
                tracked,
                protected,
                window,
                move_protected,
                move_window,
                sketch._table,
                sketch._salt,
                sketch._mask,
                sketch.sample_size - sketch.size,
                self._climb_period - self._hits - self._misses,
            )
            sketch.size += counted
            self._hits += hits
            if stopped == _REPLAY_MID_KEY:
                # batch[index] is counted, not yet moved: halve if due, then move it here.
                if sketch.size >= sketch.sample_size:
                    sketch.reset()
                self._refresh(batch[index])
                self._hits += 1
                index += 1
            if self._hits + self._misses >= self._climb_period:
                self._climb()

    def _replay_python(self, keys: Iterable[Hashable], tracked: Container[Hashable]) -> None:
        """:meth:`on_access_many` in Python: the reference for the C replay, and its fallback.

        The sketch's increment and the region update are inlined (two calls less per key
        than ``on_access``).
        """
        sketch = self._sketch
        protected = self._protected
        window = self._window
        move_protected = protected.move_to_end
        move_window = window.move_to_end
        # The sketch's internals, for the inlined increment; ``table`` is re-read after a
        # halving (reset() replaces it) and ``period`` after a climb.
        table = sketch._table
        mask = sketch._mask
        row1, row2, row3 = sketch._row1, sketch._row2, sketch._row3
        salt = sketch._salt
        top = _COUNTER_MAX  # a local: read four times per key
        counted = 0  # increments not yet added to sketch.size
        budget = sketch.sample_size - sketch.size  # increments until the next halving
        requests = self._hits + self._misses
        period = self._climb_period
        for key in keys:
            if key not in tracked:
                continue
            # FrequencySketch.increment, inlined.
            h = hash((key, salt))
            a = h & mask
            b = ((h >> 33) & mask) | 1
            added = False
            if table[a] < top:
                table[a] += 1
                added = True
            a = (a + b) & mask
            i = row1 + a
            if table[i] < top:
                table[i] += 1
                added = True
            a = (a + b) & mask
            i = row2 + a
            if table[i] < top:
                table[i] += 1
                added = True
            a = (a + b) & mask
            i = row3 + a
            if table[i] < top:
                table[i] += 1
                added = True
            if added:
                counted += 1
                if counted >= budget:  # the halving falls here, as in increment()
                    sketch.size += counted
                    counted = 0
                    sketch.reset()
                    table = sketch._table
                    budget = sketch.sample_size - sketch.size
            # on_access's region update.
            if key in protected:
                move_protected(key)
            elif key in window:
                move_window(key)
            else:
                self._promote(key)
            requests += 1
            if requests >= period:
                self._hits = requests - self._misses
                self._climb()  # zeroes the counts
                requests = 0
                period = self._climb_period
        sketch.size += counted
        self._hits = requests - self._misses

    def on_update(self, key: Hashable, weight: int) -> None:
        """Record the new weight of ``key``; an overwrite counts as an access."""
        check_weight(weight)
        if weight != 1:
            self._weighted = True
        if key in self._protected:
            delta = weight - self._protected[key]
            self._protected[key] = weight
            self._protected_weight += delta
        elif key in self._window:
            delta = weight - self._window[key]
            self._window[key] = weight
            self._window_weight += delta
        else:
            delta = weight - self._probation[key]
            self._probation[key] = weight
        self.weight += delta
        self.on_access(key)
        if self._protected_weight > self._protected_max:
            self._demote()
        # A heavier key may overflow the window: its overflow becomes the new candidates.
        self._candidates.clear()
        self._spill_window()

    def on_remove(self, key: Hashable) -> None:
        """Forget ``key``; unknown keys are ignored (its frequency is kept)."""
        if key in self._probation:
            weight = self._probation.pop(key)
        elif key in self._protected:
            weight = self._protected.pop(key)
            self._protected_weight -= weight
        elif key in self._window:
            weight = self._window.pop(key)
            self._window_weight -= weight
        else:
            return
        self.weight -= weight
        self._entries -= 1

    def evict(self) -> Hashable:
        """Evict the loser of candidate vs victim, or main's LRU key when there is no candidate."""
        probation = self._probation
        candidates = self._candidates
        while candidates:
            candidate = candidates[-1]
            if candidate not in probation:
                # Promoted by a hit, or removed, since it left the window: no longer a candidate.
                candidates.pop()
                continue
            victim = next(iter(probation))
            if victim is candidate or victim == candidate or probation[candidate] > self.capacity:
                # Nothing older to compete with, or a key that can never fit: it goes.
                candidates.pop()
                key = candidate
            elif self._admit(candidate, victim):
                # The victim goes; the candidate stays one, as a heavy candidate may need to
                # displace several victims.
                key = victim
            else:
                candidates.pop()
                key = candidate
            weight = probation.pop(key)
            self.weight -= weight
            self._entries -= 1
            self._bury(self._window_ghost if key is candidate else self._main_ghost, key, weight)
            return key
        return self._evict_main()

    def _evict_main(self) -> Hashable:
        """:meth:`evict` without a candidate: main's least recently used key, or the window's."""
        # No candidate (after a resize, a removal, or an entry-count bound): evict main's least
        # recently used key, protected only once probation is empty, the window last.
        probation = self._probation
        ghost = self._main_ghost
        if probation:
            key, weight = probation.popitem(last=False)
        elif self._protected:
            key, weight = self._protected.popitem(last=False)
            self._protected_weight -= weight
        elif self._window:
            key, weight = self._window.popitem(last=False)
            self._window_weight -= weight
            ghost = self._window_ghost
        else:
            raise KeyError("evict() from an empty tinylfu policy")
        self._bury(ghost, key, weight)
        self.weight -= weight
        self._entries -= 1
        return key

    def clear(self) -> None:
        """Forget every key. The sketch and the climber keep what they learnt of the workload."""
        self._window.clear()
        self._probation.clear()
        self._protected.clear()
        self._candidates.clear()
        self._window_ghost.clear()
        self._main_ghost.clear()
        self._window_weight = 0
        self._protected_weight = 0
        self.weight = 0
        self._entries = 0
        self._last_miss = NO_KEY

    def __len__(self) -> int:
        """The number of tracked keys."""
        return self._entries

    def resize(self, capacity: int) -> None:
        """Set a new capacity: region bounds and the climber restart from their defaults."""
        self.capacity = check_capacity(capacity)
        self._configure()
        self._grow_at = self._next_growth()
        if self._protected_weight > self._protected_max:
            self._demote()
        self._candidates.clear()
        self._spill_window()

    # -- internals ------------------------------------------------------------------------

    def _bury(self, ghost: OrderedDict[Hashable, int], key: Hashable, weight: int) -> None:
        """Remember an evicted ``key`` in ``ghost``, forgetting its oldest keys past the bound."""
        ghost[key] = weight
        limit = max(_MIN_GHOST, int(_GHOST_SHARE * self._entries))
        while len(ghost) > limit:
            ghost.popitem(last=False)

    def _ghost_check(self, key: Hashable) -> None:
        """A miss: if ``key`` was evicted a moment ago, count which region's growth would have kept it."""
        ghost = self._window_ghost
        if key in ghost:
            self._window_ghost_hits += ghost.pop(key)
            return
        ghost = self._main_ghost
        if key in ghost:
            self._main_ghost_hits += ghost.pop(key)

    def _spill_window(self) -> None:
        """Move the window's overflow, least recent first, to probation as candidates."""
        window = self._window
        probation = self._probation
        candidates = self._candidates
        while self._window_weight > self._window_max and window:
            key, weight = window.popitem(last=False)
            self._window_weight -= weight
            probation[key] = weight
            candidates.append(key)

    def _admit(self, candidate: Hashable, victim: Hashable) -> bool:
        """Should ``candidate`` replace ``victim`` in main? (Caffeine's ``admit``.)"""
        frequency = self._sketch.frequency
        candidate_freq = frequency(candidate)
        # A cold candidate must lead by two (its own request a moment ago is the first one).
        if candidate_freq > frequency(victim) + (candidate_freq <= _ADMIT_COLD_MAX):
            return True
        if candidate_freq < _ADMIT_HASHDOS_THRESHOLD:
            return False
        # A warm candidate losing to a victim may face a victim made hot by hash collisions:
        # admit it now and then, so such an attack cannot freeze the cache.
        return (self._rng.getrandbits(7) & _ADMIT_RANDOM_MASK) == 0

    def _refresh(self, key: Hashable) -> None:
        """A hit's region update: the recent end of protected or the window; probation promotes."""
        # Protected first: in a warm cache that is where most hits land.
        protected = self._protected
        if key in protected:
            protected.move_to_end(key)
        elif key in self._window:
            self._window.move_to_end(key)
        else:
            self._promote(key)

    def _promote(self, key: Hashable) -> None:
        """A hit in probation: move ``key`` to protected (demoting protected's overflow)."""
        weight = self._probation.pop(key)
        if weight > self._protected_max:
            # Can never fit in protected: refresh it within probation instead (Caffeine).
            self._probation[key] = weight
            return
        self._protected[key] = weight
        self._protected_weight += weight
        if self._protected_weight > self._protected_max:
            self._demote()

    def _demote(self) -> None:
        """Move protected's least recent keys to probation's recent end until it fits."""
        protected = self._protected
        probation = self._probation
        while self._protected_weight > self._protected_max and protected:
            key, weight = protected.popitem(last=False)
            self._protected_weight -= weight
            probation[key] = weight

    def _next_growth(self) -> int:
        """The entry count at which the sketch must grow: past its size, if it may grow."""
        if self._weighted or self._sketch.entries < self.capacity:
            return self._sketch.entries + 1
        # Unit weights never hold more than capacity entries: the sketch is big enough.
        return 1 << 62

    def _grow_sketch(self) -> None:
        """Size the sketch for the keys the cache now holds (doubling, so amortized O(1))."""
        entries = 2 * self._entries
        if not self._weighted:
            entries = min(entries, self.capacity)
        self._sketch.ensure_capacity(entries)
        self._climb_period = max(_MIN_CLIMB_PERIOD, _CLIMB_FACTOR * min(self.capacity, self._sketch.entries))
        self._grow_at = self._next_growth()

    def _climb(self) -> None:
        """One step of the hill climber, at the end of a sample period (Caffeine's ``climb``)."""
        window_gain = self._window_ghost_hits
        main_gain = self._main_ghost_hits
        self._window_ghost_hits = 0
        self._main_ghost_hits = 0
        self._hits = 0
        self._misses = 0
        if not self._adaptive:
            return
        if not self._warm:
            # Caffeine does not climb before the cache is half full: while it fills, the hit
            # rate rises whatever the window size, which would only mislead the climber.
            if 2 * self.weight < self.capacity:
                return
            self._warm = True
        # Step towards the region whose ghosts caught more misses: that is the side where one
        # more step of room would have turned more misses into hits. A tie (often 0 to 0) holds,
        # and a narrow lead moves less: the full step needs one side to catch 3x the other's.
        step = abs(self._step)
        total = window_gain + main_gain
        amount = step * max(-1.0, min(1.0, 2 * (window_gain - main_gain) / total)) if total else 0.0
        # Settle: smaller and smaller steps around the best size found.
        self._step = _STEP_DECAY * step
        adjustment = int(amount)
        if adjustment > 0:
            self._increase_window(adjustment)
        elif adjustment < 0:
            self._decrease_window(-adjustment)

    def _increase_window(self, amount: int) -> None:
        """Grow the window by up to ``amount``, taken from protected (Caffeine's increaseWindow)."""
        if self._protected_max == 0:
            return
        quota = min(amount, self._protected_max)
        self._protected_max -= quota
        self._window_max += quota
        self._demote()
        probation = self._probation
        protected = self._protected
        window = self._window
        # Move main's least recent keys into the window, so the bigger window is used at once.
        for _ in range(_TRANSFER_LIMIT):
            # Probation's least recent key if it fits the quota, else protected's (Caffeine).
            source = probation
            key: Hashable = next(iter(probation)) if probation else NO_KEY
            if key is NO_KEY or quota < probation[key]:
                if not protected:
                    break
                source = protected
                key = next(iter(protected))
            weight = source[key]
            if quota < weight:
                break
            quota -= weight
            if source is probation:
                del probation[key]
            else:
                del protected[key]
                self._protected_weight -= weight
            window[key] = weight
            self._window_weight += weight
        # Whatever could not be moved goes back: the window only grows by what it received.
        self._protected_max += quota
        self._window_max -= quota

    def _decrease_window(self, amount: int) -> None:
        """Shrink the window by up to ``amount``, given to protected (Caffeine's decreaseWindow)."""
        if self._window_max <= 1:
            return
        quota = min(amount, self._window_max - 1)
        self._protected_max += quota
        self._window_max -= quota
        window = self._window
        probation = self._probation
        for _ in range(_TRANSFER_LIMIT):
            if not window:
                break
            key = next(iter(window))
            weight = window[key]
            if quota < weight:
                break
            quota -= weight
            del window[key]
            self._window_weight -= weight
            probation[key] = weight
        self._protected_max -= quota
        self._window_max += quota
