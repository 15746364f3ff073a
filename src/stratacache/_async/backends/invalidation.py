"""The layered backend's cross-process invalidation channel: Redis pub/sub.

An :class:`AsyncInvalidationChannel` publishes this process's invalidations on a Redis
channel and runs a listener (an asyncio task here, a daemon thread in the sync flavour)
that hands other processes' invalidations to its owner. It knows nothing of tiers: its
owner (the layered backend) gives it two callbacks,

* ``on_invalidate(invalidation)``: drop the copies an :data:`~stratacache.core.invalidation.Invalidation`
  names (keys, a prefix, a pattern) from the process-private tiers; called for every
  message from another sender, and with ``EVERYTHING`` whenever the subscription is
  (re)established, since messages may have been missed while it was not;
* ``on_lost()``: the subscription was lost; fills in flight must be undone.

The message format, the keepalive clock and the reconnect backoff are sans-IO, in
:mod:`stratacache.core.invalidation`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ..._drivers.background_async import Handle
from ..._drivers.background_async import start as start_background
from ..._drivers.background_async import stop as stop_background
from ..._drivers.redis_async import close_client
from ...core.breaker import CircuitBreaker
from ...core.invalidation import EVERYTHING, Backoff, Invalidation, Liveness, decode, encode

__all__ = ["AsyncInvalidationChannel", "off_details"]

_POLL = 0.1  # seconds the listener waits for a message before checking its stop flag


class _SubscriptionLost(Exception):
    """The subscription stopped answering keepalive PINGs (a silent network failure)."""


def off_details(note: str) -> dict[str, Any]:
    """The ``invalidation`` entry of ``stats().backend`` when there is no channel (``note`` says why)."""
    return {
        "channel": None,
        "state": note,
        "received": 0,
        "subscriptions": 0,
        "publish_failures": 0,
        "bad_messages": 0,
        "last_error": None,
    }


class AsyncInvalidationChannel:
    """Publish and receive invalidations on the pub/sub ``channel`` of a Redis ``client``.

    ``breaker`` is the circuit breaker of the connection (the Redis tier's): a publish is
    skipped while it is open, and counts as a failure or success on it. ``state`` is
    ``idle`` until :meth:`start`, then ``connecting``, ``listening`` (subscribed),
    ``disconnected`` (between a failure and the next subscription) and ``closed``.
    """

    def __init__(
        self,
        client: Any,
        channel: str,
        breaker: CircuitBreaker,
        *,
        on_invalidate: Callable[[Invalidation], Awaitable[None]],
        on_lost: Callable[[], None],
    ) -> None:
        self.client = client
        self.channel = channel
        self._breaker = breaker
        self._on_invalidate = on_invalidate
        self._on_lost = on_lost
        self.sender = uuid.uuid4().hex
        self.state = "idle"
        self.listener: Handle | None = None
        self._stopping = False
        self.last_error: str | None = None
        # -- counters for stats().backend["invalidation"]
        self.received = 0
        self.subscriptions = 0
        self.publish_failures = 0
        self.bad_messages = 0

    def details(self) -> dict[str, Any]:
        """The ``invalidation`` entry of ``stats().backend``."""
        return {
            "channel": self.channel,
            "state": self.state,
            "received": self.received,
            "subscriptions": self.subscriptions,
            "publish_failures": self.publish_failures,
            "bad_messages": self.bad_messages,
            "last_error": self.last_error,
        }

    def start(self) -> None:
        """Start the listener (in the async flavour: call it inside the running loop)."""
        self.state = "connecting"
        self.listener = start_background(self._listen, f"stratacache-invalidation-{self.sender[:8]}")

    async def stop(self) -> None:
        """Stop the listener (if started). Final: the channel is ``closed``."""
        self._stopping = True
        if self.listener is not None:
            await stop_background(self.listener, 5.0)
        self.state = "closed"

    async def wait_listening(self, timeout: float) -> bool:
        """Wait until subscribed: True once it is, False after ``timeout`` seconds or when stopped."""
        deadline = time.monotonic() + timeout
        while self.state != "listening":
            if time.monotonic() >= deadline or self._stopping:
                return False
            await asyncio.sleep(0.005)
        return True

    async def publish(self, invalidation: Invalidation) -> None:
        """Tell other processes to drop their copies (best effort: a failure is counted)."""
        breaker = self._breaker
        if not breaker.allow():
            self.publish_failures += 1
            return
        payload = encode(invalidation, self.sender)
        try:
            await self.client.publish(self.channel, payload)
        except Exception:  # the driver's own errors (not translated here): any means "not sent"
            breaker.record_failure()
            self.publish_failures += 1
        else:
            breaker.record_success()

    async def _listen(self) -> None:
        """Subscribe to the channel and apply other processes' invalidations until closed.

        Any failure of the subscription ends in a fresh one after a short backoff. redis-py
        may also reconnect and resubscribe by itself; either way every subscription
        confirmation means messages may have been missed, so it clears the upper tiers.
        """
        client: Any = self.client
        backoff = Backoff()
        while not self._stopping:
            pubsub: Any = None
            try:
                pubsub = client.pubsub()
                await pubsub.subscribe(self.channel)
                liveness = Liveness(time.monotonic())
                while not self._stopping:
                    message = await pubsub.get_message(timeout=_POLL)
                    now = time.monotonic()
                    if message is None:
                        subscribed = self.state == "listening"
                        reason = liveness.lost(now, subscribed)
                        if reason is not None:
                            raise _SubscriptionLost(reason)
                        if liveness.ping_due(now, subscribed):
                            await pubsub.ping()
                        continue
                    liveness.heard(now)
                    kind = message.get("type")
                    if kind == "subscribe":
                        await self._subscribed()
                        backoff.reset()
                    elif kind == "message":
                        await self._apply(message.get("data"))
            except Exception as exc:  # a driver or network error of any kind: resubscribe
                self._lost(exc)
            finally:
                if pubsub is not None:
                    # Closing a broken connection may fail too; there is nothing left to do then.
                    with contextlib.suppress(Exception):
                        await close_client(pubsub)
            if not self._stopping:
                await asyncio.sleep(backoff.next())
        self.state = "closed"

    async def _subscribed(self) -> None:
        """A (re)subscription: copies made before it may have missed messages, so drop them all."""
        self.subscriptions += 1
        await self._on_invalidate(EVERYTHING)
        self.state = "listening"

    def _lost(self, exc: Exception) -> None:
        if self._stopping:
            return
        self.state = "disconnected"
        self._on_lost()  # in-flight fills made under the old subscription are undone
        self.last_error = f"{type(exc).__name__}: {exc}"

    async def _apply(self, data: Any) -> None:
        """Apply one invalidation message from another process."""
        message = decode(data)
        if message is None:
            self.bad_messages += 1
            return
        if message.sender == self.sender:
            return  # our own write: our upper tiers are already right
        self.received += 1
        if message.invalidation is None:
            self.bad_messages += 1
            return
        await self._on_invalidate(message.invalidation)
