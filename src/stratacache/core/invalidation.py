"""The layered backend's invalidation messages and subscription clock, without I/O.

The channel itself (``stratacache._async.backends.invalidation`` and its sync twin) publishes,
subscribes and reconnects; this module holds the decisions it makes, so they can be tested
without a server:

* the message format: a JSON object with the sender id ``"s"`` and one of ``"k"`` (a list
  of keys to drop), ``"c"`` (a clear; its prefix, or null for everything) or ``"p"`` (a
  ``delete_pattern`` pattern). :func:`encode` writes it, :func:`decode` reads what any
  process (or anyone with access to the channel) published;
* :class:`Liveness`: when a quiet subscription is PINGed and when it counts as lost;
* :class:`Backoff`: the delay before a fresh subscription after a failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EVERYTHING",
    "KEEPALIVE",
    "RECONNECT_MAX",
    "RECONNECT_MIN",
    "SUBSCRIBE_TIMEOUT",
    "Backoff",
    "Clear",
    "Invalidation",
    "Keys",
    "Liveness",
    "Message",
    "Pattern",
    "decode",
    "encode",
]

KEEPALIVE = 1.0  # an idle subscription is PINGed this often; silent for 3x this = lost
SUBSCRIBE_TIMEOUT = 5.0  # seconds to wait for the subscription's confirmation
RECONNECT_MIN, RECONNECT_MAX = 0.05, 1.0  # the backoff between subscriptions doubles up to this


@dataclass(frozen=True, slots=True)
class Keys:
    """Drop these keys."""

    keys: list[str]


@dataclass(frozen=True, slots=True)
class Clear:
    """Drop the keys under ``prefix`` (every key when None)."""

    prefix: str | None


@dataclass(frozen=True, slots=True)
class Pattern:
    """Drop the keys matching the glob ``pattern``."""

    pattern: str


#: What one message asks for.
Invalidation = Keys | Clear | Pattern

#: Drop everything: what a (re)subscription does, since messages may have been missed.
EVERYTHING = Clear(None)


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded message: its sender id and what it asks for (None: nothing understood)."""

    sender: Any
    invalidation: Invalidation | None


def encode(invalidation: Invalidation, sender: str) -> str:
    """The text published for ``invalidation`` sent by ``sender``."""
    message: dict[str, Any]
    if isinstance(invalidation, Keys):
        message = {"k": invalidation.keys}
    elif isinstance(invalidation, Clear):
        message = {"c": invalidation.prefix}
    else:
        message = {"p": invalidation.pattern}
    message["s"] = sender
    return json.dumps(message, separators=(",", ":"))


def decode(data: Any) -> Message | None:
    """Read one published payload (str or bytes); None when it is not a message at all.

    A message with a sender but no understood request decodes with ``invalidation=None``,
    so that the caller can ignore its own messages before counting a bad one. Keys that
    are not strings are left out of a ``"k"`` list.
    """
    try:
        message = json.loads(data)
        sender = message["s"]
    except (ValueError, TypeError, KeyError, RecursionError):
        # RecursionError: JSON nested past the interpreter's limit, which anyone able to
        # PUBLISH can send; it is a bad message, not a failure of the subscription.
        return None
    invalidation: Invalidation | None = None
    if "k" in message and isinstance(message["k"], list):
        invalidation = Keys([key for key in message["k"] if isinstance(key, str)])
    elif "c" in message:
        invalidation = Clear(message["c"] if isinstance(message["c"], str) else None)
    elif isinstance(message.get("p"), str):
        invalidation = Pattern(message["p"])
    return Message(sender, invalidation)


class Liveness:
    """The subscription's clock: when to PING it and when it counts as lost.

    A subscription not confirmed within ``subscribe_timeout`` seconds is lost; once
    confirmed, one quiet for ``keepalive`` seconds gets one PING, and one quiet for three
    times that is lost (a silent network failure). Anything heard resets the clock.
    """

    __slots__ = ("_deadline", "_heard", "_keepalive", "_pinged")

    def __init__(
        self, now: float, *, subscribe_timeout: float = SUBSCRIBE_TIMEOUT, keepalive: float = KEEPALIVE
    ):
        self._deadline = now + subscribe_timeout
        self._keepalive = keepalive
        self._heard = now
        self._pinged = False

    def heard(self, now: float) -> None:
        """Something (a message, a confirmation, a PING reply) arrived at ``now``."""
        self._heard, self._pinged = now, False

    def lost(self, now: float, subscribed: bool) -> str | None:
        """Why the subscription counts as lost at ``now`` with nothing heard, or None."""
        if not subscribed:
            return "no subscription confirmation" if now >= self._deadline else None
        if now - self._heard >= 3 * self._keepalive:
            return "no answer to keepalive PING"
        return None

    def ping_due(self, now: float, subscribed: bool) -> bool:
        """True (once per quiet spell) when a keepalive PING should be sent now."""
        if subscribed and not self._pinged and now - self._heard >= self._keepalive:
            self._pinged = True
            return True
        return False


class Backoff:
    """Delays before resubscribing: doubling from ``low`` to ``high``, reset on success."""

    __slots__ = ("_delay", "high", "low")

    def __init__(self, low: float = RECONNECT_MIN, high: float = RECONNECT_MAX) -> None:
        self.low, self.high = low, high
        self._delay = low

    def reset(self) -> None:
        """A subscription succeeded: the next failure waits ``low`` again."""
        self._delay = self.low

    def next(self) -> float:
        """The delay to wait now; the following one doubles (at most ``high``)."""
        delay = self._delay
        self._delay = min(delay * 2, self.high)
        return delay
