"""The layered backend's invalidation messages and subscription clock (stratacache.core.invalidation).

Sans-IO: no server here. The channel that uses them is tested against a real Redis in
tests/test_layered.py.
"""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servers import RedisServer
from stratacache import MISSING, Cache
from stratacache.core.invalidation import (
    EVERYTHING,
    KEEPALIVE,
    RECONNECT_MAX,
    RECONNECT_MIN,
    SUBSCRIBE_TIMEOUT,
    Backoff,
    Clear,
    Keys,
    Liveness,
    Message,
    Pattern,
    decode,
    encode,
)

invalidations = st.one_of(
    st.builds(Keys, st.lists(st.text())),
    st.builds(Clear, st.none() | st.text()),
    st.builds(Pattern, st.text()),
)


def test_encode_writes_the_wire_format_other_processes_read() -> None:
    # The format is shared with every process on the channel (other versions included).
    assert encode(Keys(["a", "b"]), "me") == '{"k":["a","b"],"s":"me"}'
    assert encode(Clear("app:"), "me") == '{"c":"app:","s":"me"}'
    assert encode(EVERYTHING, "me") == '{"c":null,"s":"me"}'
    assert encode(Pattern("p:*"), "me") == '{"p":"p:*","s":"me"}'


@given(invalidations, st.text())
def test_decode_reads_what_encode_writes(invalidation: Keys | Clear | Pattern, sender: str) -> None:
    payload = encode(invalidation, sender)
    assert decode(payload) == Message(sender, invalidation)
    assert decode(payload.encode()) == Message(sender, invalidation)  # redis-py hands out bytes


@pytest.mark.parametrize("payload", ["not json", "[1]", '"s"', "1", "null", '{"k": ["x"]}', b"\xff", None])
def test_decode_refuses_what_is_not_a_message(payload: object) -> None:
    assert decode(payload) is None


def test_decode_keeps_the_sender_of_a_message_it_does_not_understand() -> None:
    # The channel ignores its own messages before it counts a bad one.
    assert decode(json.dumps({"s": "other", "z": 1})) == Message("other", None)
    assert decode(json.dumps({"s": "other", "p": 3})) == Message("other", None)


def test_decode_drops_keys_that_are_not_strings_and_prefixes_that_are_not() -> None:
    assert decode(json.dumps({"s": "x", "k": ["a", 1, None, "b"]})) == Message("x", Keys(["a", "b"]))
    assert decode(json.dumps({"s": "x", "c": 5})) == Message("x", EVERYTHING)
    # "k" that is not a list falls through to the other kinds.
    assert decode(json.dumps({"s": "x", "k": "a", "c": "p"})) == Message("x", Clear("p"))


@pytest.mark.parametrize("payload", ["[" * 100_000, '{"s": "x", "k": ' + "[" * 100_000 + "}"])
def test_decode_refuses_a_message_nested_past_the_recursion_limit(payload: str) -> None:
    # json.loads raises RecursionError here: not a message, not a reason to drop the subscription.
    assert decode(payload) is None


def test_a_deeply_nested_message_is_counted_as_bad_and_keeps_the_subscription(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    with Cache(backend="layered", tiers=["memory", redis_server.url], channel="test:deep") as cache:
        assert cache.backend.wait_listening()  # type: ignore[attr-defined]
        cache.set("k", 1)
        redis_server.command("PUBLISH", "test:deep", "[" * 100_000)
        deadline = time.monotonic() + 5
        while cache.stats().backend["invalidation"]["bad_messages"] < 1:
            assert time.monotonic() < deadline, cache.stats().backend["invalidation"]
            time.sleep(0.01)
        details = cache.stats().backend["invalidation"]
        assert details["subscriptions"] == 1
        assert details["last_error"] is None
        # L1 was not cleared by a resubscription.
        assert cache.backend.tiers[0].store.get("k") is not MISSING  # type: ignore[attr-defined]


@given(st.binary())
def test_decode_of_arbitrary_bytes_never_raises(data: bytes) -> None:
    message = decode(data)
    assert message is None or isinstance(message, Message)


def test_liveness_waits_for_the_confirmation_then_gives_up() -> None:
    clock = Liveness(100.0)
    assert clock.lost(100.0 + SUBSCRIBE_TIMEOUT - 0.01, subscribed=False) is None
    assert not clock.ping_due(100.0 + SUBSCRIBE_TIMEOUT - 0.01, subscribed=False)  # nothing to PING yet
    assert clock.lost(100.0 + SUBSCRIBE_TIMEOUT, subscribed=False) == "no subscription confirmation"


def test_liveness_pings_a_quiet_subscription_once_then_declares_it_lost() -> None:
    clock = Liveness(0.0)
    clock.heard(10.0)
    assert not clock.ping_due(10.0 + KEEPALIVE / 2, subscribed=True)
    assert clock.ping_due(10.0 + KEEPALIVE, subscribed=True)
    assert not clock.ping_due(10.0 + 2 * KEEPALIVE, subscribed=True)  # one PING per quiet spell
    assert clock.lost(10.0 + 3 * KEEPALIVE - 0.01, subscribed=True) is None
    assert clock.lost(10.0 + 3 * KEEPALIVE, subscribed=True) == "no answer to keepalive PING"


def test_liveness_resets_when_anything_is_heard() -> None:
    clock = Liveness(0.0)
    assert clock.ping_due(KEEPALIVE, subscribed=True)
    clock.heard(2 * KEEPALIVE)  # the PONG
    assert clock.lost(4 * KEEPALIVE, subscribed=True) is None
    assert clock.ping_due(3 * KEEPALIVE, subscribed=True)  # the next quiet spell gets its PING


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff()
    delays = [backoff.next() for _ in range(8)]
    assert delays[0] == RECONNECT_MIN
    assert delays[1] == 2 * RECONNECT_MIN
    assert delays[-1] == RECONNECT_MAX
    assert delays == sorted(delays)
    backoff.reset()
    assert backoff.next() == RECONNECT_MIN
