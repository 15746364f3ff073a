"""The outcome of ``cache.warm(...)``: how many keys were loaded, failed or skipped."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MAX_WARM_ERRORS", "WarmReport"]

MAX_WARM_ERRORS = 100
"""At most this many errors are kept in a report (``failed`` still counts every one), so
warming a million keys against a source that is down does not hold a million exceptions."""


@dataclass(frozen=True, slots=True)
class WarmReport:
    """What ``warm()`` did.

    * ``loaded``: keys stored into the cache.
    * ``failed``: keys whose load or store raised (the cache is left as it was for them).
    * ``skipped``: keys the source did not have (a loader returned MISSING, a mapping or
      ``load_many`` left them out).
    * ``seconds``: wall time of the whole run.
    * ``errors``: key -> the exception (a :class:`~stratacache.SourceError` for a source
      failure, the cache's error for a store failure), the first :data:`MAX_WARM_ERRORS`.
    """

    loaded: int
    failed: int
    skipped: int
    seconds: float
    errors: dict[str, BaseException] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Every key looked at: ``loaded + failed + skipped``."""
        return self.loaded + self.failed + self.skipped
