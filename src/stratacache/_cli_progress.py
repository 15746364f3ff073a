"""Progress bars for the command line's long work (``warm``, ``bench``).

tqdm draws them when it is installed (``pip install 'stratacache[cli]'``): it was chosen
over rich because a progress bar is all the command line needs, and tqdm does only that,
in one pure-Python package with no dependencies of its own, and already knows when its
stream is not a terminal. Without it a one-line counter is redrawn with ``\\r``. Either
way the bar goes to stderr, and only when stderr is a terminal, so piped output and logs
hold results only.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any, Self, TextIO

__all__ = ["Progress"]


class Progress:
    """A progress bar over ``total`` steps; ``update(done)`` sets how many are done.

    ``enabled=None`` shows it only when ``stream`` is a terminal. Use it as a context
    manager: leaving closes the bar (and ends its line).
    """

    def __init__(
        self,
        description: str,
        total: int,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        use_tqdm: bool = True,
    ) -> None:
        self.description = description
        self.total = total
        self.done = 0
        self._stream = sys.stderr if stream is None else stream
        if enabled is None:
            isatty = getattr(self._stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self._bar: Any = None
        self._drawn = False
        if enabled and use_tqdm:
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=total, desc=description, file=self._stream, leave=False)

    def update(self, done: int, total: int | None = None) -> None:
        """``done`` of ``total`` (default: the total given at creation) steps are finished."""
        if total is not None and total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
        step = done - self.done
        self.done = done
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(step)
            return
        width = 30
        filled = width * done // self.total if self.total > 0 else width
        bar = "#" * filled + "-" * (width - filled)
        self._stream.write(f"\r{self.description} [{bar}] {done}/{self.total}")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Remove the bar (tqdm) or end its line (the plain counter)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
