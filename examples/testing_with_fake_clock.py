"""Testing code that uses a cache: a FakeClock makes expiry instant, no sleeping."""

import stratacache as sc
from stratacache.testing import FakeClock

clock = FakeClock()
cache = sc.Cache(sc.MemoryBackend(clock=clock), default_ttl=60)


def session_user(token: str) -> str:
    return cache.get_or_set(f"session:{token}", lambda: f"user-for-{token}")


print("first        ->", session_user("abc"), "ttl", cache.ttl("session:abc"))
clock.advance(59)
print("after 59 s   ->", cache.get("session:abc", "<expired>"))
clock.advance(2)
print("after 61 s   ->", cache.get("session:abc", "<expired>"))
cache.close()
