"""Django's cache API over stratacache, run by Django's own test runner (DiscoverRunner).

tests/integrations/test_django.py runs ``python -m django test cacheapp`` once per backend
(memory, a real redis-server, ``stratacache serve``); ``STRATACACHE_DJANGO_LOCATION`` names
the URL. Over ``memory://`` the cache runs on settings.CLOCK, a FakeClock: expiry is tested
by advancing it. Over a server, the expiry set is read back with ``ttl()`` instead of
sleeping.
"""

import datetime
import os
import pickle
import warnings
from decimal import Decimal

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.base import CacheKeyWarning
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, Client, SimpleTestCase, TestCase, override_settings

import stratacache as sc
from stratacache._types import MAX_TTL
from stratacache.contrib.django import PickleSerializationError, StratacacheCache, close_shared_caches


class Point:
    """A user class: Django caches any picklable object."""

    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None  # type: ignore[assignment]


class CacheTestCase(TestCase):
    def tearDown(self) -> None:
        cache.clear()

    def advance(self, seconds: float) -> None:
        settings.CLOCK.advance(seconds)

    @property
    def slack(self) -> float:
        """The backend's expiry granularity: Memcached keeps whole seconds."""
        return float(cache.stratacache.backend.capabilities.ttl_resolution)

    def raw_ttl(self, key: str, alias: str = "default", version: int | None = None) -> object:
        backend = caches[alias]
        return backend.stratacache.ttl(backend.make_key(key, version=version))


class BasicOperations(CacheTestCase):
    def test_get_set_default_and_stored_none(self) -> None:
        self.assertIsNone(cache.get("absent"))
        self.assertEqual(cache.get("absent", "fallback"), "fallback")
        cache.set("k", "v")
        self.assertEqual(cache.get("k"), "v")
        cache.set("none", None)
        self.assertIsNone(cache.get("none", "fallback"))

    def test_values_are_pickled_copies(self) -> None:
        values = {
            "dt": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC),
            "dec": Decimal("1.25"),
            "point": Point(1, 2),
            "tuple": (1, "a", b"\x00"),
            "set": frozenset({1, 2}),
        }
        cache.set("values", values)
        self.assertEqual(cache.get("values"), values)
        got = cache.get("values")
        got["dt"] = None
        # Like Django's own backends: a value read back is a copy, not the cached object.
        self.assertEqual(cache.get("values")["dt"], values["dt"])

    def test_unpicklable_value_raises_serialization_error(self) -> None:
        with self.assertRaises(sc.SerializationError):
            cache.set("bad", lambda: 1)
        self.assertIsNone(cache.get("bad"))

    def test_add(self) -> None:
        self.assertIs(cache.add("a", 1), True)
        self.assertIs(cache.add("a", 2), False)
        self.assertEqual(cache.get("a"), 1)

    def test_get_or_set(self) -> None:
        self.assertEqual(cache.get_or_set("gos", "first"), "first")
        self.assertEqual(cache.get_or_set("gos", "second"), "first")
        calls: list[int] = []

        def compute() -> int:
            calls.append(1)
            return 7

        self.assertEqual(cache.get_or_set("gos2", compute), 7)
        self.assertEqual(cache.get_or_set("gos2", compute), 7)
        self.assertEqual(len(calls), 1)
        # As in Django, a callable's None is stored.
        self.assertIsNone(cache.get_or_set("gos-none", lambda: None))
        self.assertIsNone(cache.get("gos-none", "fallback"))

    def test_get_many_set_many_delete_many(self) -> None:
        self.assertEqual(cache.set_many({"a": 1, "b": [2], "c": None}), [])
        self.assertEqual(cache.get_many(["a", "b", "c", "d"]), {"a": 1, "b": [2], "c": None})
        self.assertEqual(cache.get_many([]), {})
        self.assertEqual(cache.set_many({}), [])
        self.assertIsNone(cache.delete_many(["a", "b", "zz"]))
        self.assertEqual(cache.get_many(["a", "b", "c"]), {"c": None})
        cache.delete_many([])

    def test_values_over_the_item_size(self) -> None:
        # As Django's memcached backends: a value over Memcached's item size is not stored,
        # set() does not raise and the key loses its old value (never a stale read);
        # set_many() returns the keys not stored, which lose their old values too.
        big = os.urandom(cache.stratacache.backend.max_value_size + 1) if self.limited else b""
        cache.set_many({"big": "old", "big2": "old", "small": "old"})
        cache.set("big", big)
        self.assertEqual(cache.get("big", "missing"), "missing" if self.limited else big)
        failed = cache.set_many({"big2": big, "small": "new"})
        self.assertEqual(failed, ["big2"] if self.limited else [])
        self.assertEqual(cache.get("big2", "missing"), "missing" if self.limited else big)
        self.assertEqual(cache.get("small"), "new")
        self.assertEqual(async_to_sync(cache.aset_many)({"small": big}), ["small"] if self.limited else [])
        self.assertEqual(cache.get("small", "missing"), "missing" if self.limited else big)

    @property
    def limited(self) -> bool:
        """True over Memcached, whose items have a size limit."""
        return settings.LOCATION.startswith("memcached://")

    def test_delete_and_has_key(self) -> None:
        cache.set("d", 1)
        self.assertTrue(cache.has_key("d"))
        self.assertIn("d", cache)
        self.assertIs(cache.delete("d"), True)
        self.assertIs(cache.delete("d"), False)
        self.assertFalse(cache.has_key("d"))
        self.assertNotIn("d", cache)

    def test_incr_decr(self) -> None:
        cache.set("n", 10)
        self.assertEqual(cache.incr("n"), 11)
        self.assertEqual(cache.incr("n", 5), 16)
        self.assertEqual(cache.decr("n"), 15)
        self.assertEqual(cache.decr("n", 20), -5)
        self.assertEqual(cache.get("n"), -5)
        with self.assertRaisesMessage(ValueError, "Key 'missing' not found"):
            cache.incr("missing")
        with self.assertRaises(ValueError):
            cache.decr("missing")
        self.assertFalse(cache.has_key("missing"))
        cache.set("text", "abc")
        with self.assertRaises(TypeError):
            cache.incr("text")

    def test_incr_keeps_the_timeout(self) -> None:
        cache.set("n", 1, timeout=100)
        cache.incr("n")
        remaining = self.raw_ttl("n")
        self.assertIsInstance(remaining, float)
        self.assertLessEqual(remaining, 100 + self.slack)

    def test_clear(self) -> None:
        cache.set_many({"a": 1, "b": 2})
        caches["prefixed"].set("c", 3)
        cache.clear()
        self.assertEqual(cache.get_many(["a", "b"]), {})
        self.assertIsNone(caches["prefixed"].get("c"))

    def test_close_leaves_the_cache_usable(self) -> None:
        cache.set("k", 1)
        cache.close()
        self.assertEqual(cache.get("k"), 1)
        cache.set("k", 2)
        self.assertEqual(cache.get("k"), 2)

    def test_close_shared_caches_releases_and_reopens(self) -> None:
        cache.set("k", 1)
        before = cache.stratacache
        close_shared_caches()
        self.assertTrue(before.closed)
        # The next use reopens; a server keeps the data, memory:// starts empty.
        self.assertEqual(cache.get("k"), None if settings.IN_PROCESS else 1)
        self.assertIsNot(cache.stratacache, before)
        cache.set("k", 2)
        self.assertEqual(caches["v2"].get("k", version=1), 2)
        close_shared_caches()
        close_shared_caches()  # idempotent

    def test_every_thread_shares_the_store(self) -> None:
        # Django keeps one backend object per thread; both see one store.
        import threading

        seen: list[object] = []
        cache.set("shared", "yes")

        def other() -> None:
            seen.append(caches["default"].get("shared"))
            caches["default"].set("from-thread", 1)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        self.assertEqual(seen, ["yes"])
        self.assertEqual(cache.get("from-thread"), 1)


class Timeouts(CacheTestCase):
    def test_default_timeout_is_the_timeout_setting(self) -> None:
        caches["short"].set("s", 1)
        remaining = self.raw_ttl("s", "short")
        self.assertIsInstance(remaining, float)
        self.assertGreater(remaining, 0)
        self.assertLessEqual(remaining, 5 + self.slack)
        # The default TIMEOUT is 300 seconds.
        cache.set("d", 1)
        self.assertLessEqual(self.raw_ttl("d"), 300 + self.slack)
        self.assertGreater(self.raw_ttl("d"), 5)

    def test_none_never_expires(self) -> None:
        cache.set("forever", 1, timeout=None)
        self.assertIsNone(self.raw_ttl("forever"))
        caches["forever"].set("f2", 1)
        self.assertIsNone(self.raw_ttl("f2", "forever"))

    def test_zero_and_negative_do_not_cache(self) -> None:
        cache.set("z", "old")
        cache.set("z", "new", timeout=0)
        self.assertIsNone(cache.get("z"))
        cache.set("neg", 1, timeout=-1)
        self.assertFalse(cache.has_key("neg"))
        # add with 0 reports whether the key was absent, and stores nothing.
        self.assertIs(cache.add("z0", 1, timeout=0), True)
        self.assertFalse(cache.has_key("z0"))
        cache.set("present", 1)
        self.assertIs(cache.add("present", 2, timeout=0), False)
        self.assertEqual(cache.get("present"), 1)
        cache.set_many({"m1": 1, "m2": 2})
        self.assertEqual(cache.set_many({"m1": 3, "m2": 4}, timeout=0), [])
        self.assertEqual(cache.get_many(["m1", "m2"]), {})
        self.assertEqual(cache.get_or_set("gz", "v", timeout=0), "v")
        self.assertFalse(cache.has_key("gz"))

    def test_timeouts_longer_than_max_ttl_are_capped(self) -> None:
        cache.set("long", 1, timeout=MAX_TTL * 3)
        self.assertEqual(cache.get("long"), 1)
        self.assertLessEqual(self.raw_ttl("long"), MAX_TTL + self.slack)
        self.assertGreater(self.raw_ttl("long"), MAX_TTL - 60)

    def test_float_timeout(self) -> None:
        cache.set("f", 1, timeout=2.5)
        self.assertLessEqual(self.raw_ttl("f"), 2.5 + self.slack)

    def test_touch(self) -> None:
        cache.set("t", 1, timeout=10)
        self.assertIs(cache.touch("t", 100), True)
        self.assertGreater(self.raw_ttl("t"), 10)
        self.assertIs(cache.touch("t", None), True)
        self.assertIsNone(self.raw_ttl("t"))
        self.assertIs(cache.touch("t"), True)  # the default timeout again
        self.assertLessEqual(self.raw_ttl("t"), 300 + self.slack)
        self.assertIs(cache.touch("absent", 10), False)
        self.assertIs(cache.touch("t", 0), True)
        self.assertFalse(cache.has_key("t"))

    def test_expiry(self) -> None:
        if not settings.IN_PROCESS:
            self.skipTest("expiry over time runs on the FakeClock of the memory backend")
        cache.set("e", 1, timeout=10)
        cache.set("keep", 1, timeout=None)
        self.advance(9)
        self.assertEqual(cache.get("e"), 1)
        self.advance(2)
        self.assertIsNone(cache.get("e"))
        self.assertFalse(cache.has_key("e"))
        self.assertIs(cache.add("e", 2, timeout=10), True)
        self.assertIs(cache.touch("keep", 5), True)
        self.advance(6)
        self.assertIsNone(cache.get("keep"))
        with self.assertRaises(ValueError):
            cache.incr("keep")


class KeysAndVersions(CacheTestCase):
    def test_version_argument(self) -> None:
        cache.set("v", "one", version=1)
        cache.set("v", "two", version=2)
        self.assertEqual(cache.get("v"), "one")
        self.assertEqual(cache.get("v", version=2), "two")
        self.assertEqual(cache.get_many(["v"], version=2), {"v": "two"})
        cache.delete("v", version=2)
        self.assertIsNone(cache.get("v", version=2))
        self.assertEqual(cache.get("v"), "one")

    def test_version_setting(self) -> None:
        cache.set("shared", "via default", version=2)
        self.assertEqual(caches["v2"].get("shared"), "via default")
        caches["v2"].set("other", "via v2")
        self.assertIsNone(cache.get("other"))
        self.assertEqual(cache.get("other", version=2), "via v2")

    def test_incr_decr_version(self) -> None:
        cache.set("iv", "value", timeout=50)
        self.assertEqual(cache.incr_version("iv"), 2)
        self.assertIsNone(cache.get("iv"))
        self.assertEqual(cache.get("iv", version=2), "value")
        # The remaining timeout moves with the value.
        self.assertLessEqual(self.raw_ttl("iv", version=2), 50 + self.slack)
        self.assertEqual(cache.incr_version("iv", 3, version=2), 5)
        self.assertEqual(cache.decr_version("iv", version=5), 4)
        self.assertEqual(cache.get("iv", version=4), "value")
        with self.assertRaises(ValueError):
            cache.incr_version("missing")
        with self.assertRaises(ValueError):
            cache.decr_version("missing")
        cache.set("forever", 1, timeout=None)
        cache.incr_version("forever")
        self.assertIsNone(self.raw_ttl("forever", version=2))

    def test_key_prefix(self) -> None:
        cache.set("k", "plain")
        caches["prefixed"].set("k", "prefixed")
        self.assertEqual(cache.get("k"), "plain")
        self.assertEqual(caches["prefixed"].get("k"), "prefixed")
        self.assertEqual(caches["prefixed"].make_key("k"), "site:1:k")
        self.assertTrue(cache.stratacache.exists("site:1:k"))
        self.assertTrue(cache.stratacache.exists(":1:k"))

    def test_key_function(self) -> None:
        caches["custom_key"].set("abc", 1)
        self.assertTrue(cache.stratacache.exists("cba|1|"))
        self.assertEqual(caches["custom_key"].get("abc"), 1)
        self.assertIsNone(cache.get("abc"))

    def test_memcached_unsafe_keys_warn(self) -> None:
        for key in ("has space", "x" * 260, "tab\tkey"):
            with self.assertWarns(CacheKeyWarning):
                cache.set(key, 1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CacheKeyWarning)
                self.assertEqual(cache.get(key), 1)


class AsyncAPI(CacheTestCase):
    async def test_async_methods(self) -> None:
        self.assertIsNone(await cache.aget("a"))
        await cache.aset("a", {"x": 1})
        self.assertEqual(await cache.aget("a"), {"x": 1})
        self.assertIs(await cache.aadd("a", 2), False)
        self.assertIs(await cache.aadd("b", 2), True)
        self.assertEqual(await cache.aget_or_set("c", lambda: 3), 3)
        self.assertEqual(await cache.aset_many({"d": 4, "e": 5}), [])
        self.assertEqual(await cache.aget_many(["a", "b", "d", "zz"]), {"a": {"x": 1}, "b": 2, "d": 4})
        self.assertIs(await cache.ahas_key("d"), True)
        self.assertEqual(await cache.aincr("b", 10), 12)
        self.assertEqual(await cache.adecr("b"), 11)
        with self.assertRaises(ValueError):
            await cache.aincr("absent")
        self.assertIs(await cache.atouch("b", None), True)
        self.assertIs(await cache.atouch("absent", 10), False)
        self.assertIs(await cache.adelete("b"), True)
        self.assertIs(await cache.adelete("b"), False)
        await cache.adelete_many(["d", "e"])
        self.assertEqual(await cache.aget_many(["d", "e"]), {})
        self.assertEqual(await cache.aincr_version("a"), 2)
        self.assertEqual(await cache.aget("a", version=2), {"x": 1})
        self.assertEqual(await cache.adecr_version("a", version=2), 1)
        await cache.aset("zero", 1, timeout=0)
        self.assertIs(await cache.ahas_key("zero"), False)
        await cache.aclear()
        self.assertIsNone(await cache.aget("a"))
        await cache.aclose()
        await cache.aset("after-close", 1)
        self.assertEqual(await cache.aget("after-close"), 1)


class Views(CacheTestCase):
    def test_cache_page(self) -> None:
        client = Client()
        first = client.get("/counted/")
        second = client.get("/counted/")
        self.assertEqual(first.status_code, 200)
        self.assertEqual(first.content, second.content)
        cache.clear()
        third = client.get("/counted/")
        self.assertNotEqual(third.content, first.content)
        # The page was stored as a pickled HttpResponse, signed.
        self.assertTrue(third.has_header("Expires"))

    async def test_async_view(self) -> None:
        client = AsyncClient()
        first = await client.get("/async-counter/")
        second = await client.get("/async-counter/")
        self.assertEqual(first.json(), {"hits": 1})
        self.assertEqual(second.json(), {"hits": 2})


class Signing(CacheTestCase):
    def test_values_are_signed_with_a_key_derived_from_secret_key(self) -> None:
        if settings.IN_PROCESS:
            self.skipTest("a forged value needs a backend that stores bytes")
        cache.set("signed", "value")
        raw_cache = sc.Cache(settings.LOCATION, namespace="djangotests", serializer="raw")
        try:
            key = cache.make_key("signed")
            stored = raw_cache.get(key)
            self.assertIsInstance(stored, bytes)
            # A value pickled by someone without the key is refused, never unpickled.
            raw_cache.set(key, pickle.dumps("forged"))
            with self.assertRaises(sc.SerializationError):
                cache.get("signed")
        finally:
            raw_cache.close()


class Configuration(SimpleTestCase):
    """Bad LOCATION / OPTIONS fail when the cache is built, naming what is wrong."""

    def build(self, location: object, **params: object) -> StratacacheCache:
        return StratacacheCache(location, params)  # type: ignore[arg-type]

    def test_unknown_scheme(self) -> None:
        with self.assertRaisesRegex(ImproperlyConfigured, "LOCATION 'bogus://x'.*bogus") as caught:
            self.build("bogus://x")
        self.assertIsInstance(caught.exception.__cause__, sc.ConfigurationError)

    def test_unknown_option(self) -> None:
        with self.assertRaisesRegex(ImproperlyConfigured, "no_such_option"):
            self.build("memory://", OPTIONS={"no_such_option": 1})

    def test_bad_option_value(self) -> None:
        with self.assertRaisesRegex(ImproperlyConfigured, "max_entries"):
            self.build("memory://", OPTIONS={"max_entries": "many"})
        with self.assertRaisesRegex(ImproperlyConfigured, "serializer"):
            self.build("memory://", OPTIONS={"serializer": "yaml-please"})

    def test_location_must_be_one_url(self) -> None:
        with self.assertRaisesRegex(ImproperlyConfigured, "LOCATION must be one stratacache URL"):
            self.build(["redis://a", "redis://b"])

    def test_options_must_be_a_dict(self) -> None:
        with self.assertRaisesRegex(ImproperlyConfigured, "OPTIONS must be a dict"):
            self.build("memory://", OPTIONS=["namespace"])

    def test_cull_frequency_is_refused(self) -> None:
        with self.assertRaisesRegex(ImproperlyConfigured, "CULL_FREQUENCY"):
            self.build("memory://", OPTIONS={"CULL_FREQUENCY": 3})

    def test_max_entries_bounds_the_memory_backend(self) -> None:
        bounded = self.build("memory://?namespace=bounded", OPTIONS={"MAX_ENTRIES": 5})
        for i in range(20):
            bounded.set(f"k{i}", i)
        self.assertLessEqual(len(bounded.get_many([f"k{i}" for i in range(20)])), 5)
        bounded.clear()

    def test_set_many_returns_the_keys_too_large_to_store(self) -> None:
        small_store = self.build("memory://?namespace=sized&max_bytes=2000")
        failed = small_store.set_many({"big": "x" * 5000, "small": 1, "other": [1, 2]})
        self.assertEqual(failed, ["big"])
        self.assertEqual(small_store.get_many(["big", "small", "other"]), {"small": 1, "other": [1, 2]})
        # set() of a value too large does not raise and deletes the key, as in Django.
        small_store.set("small", "x" * 5000)
        self.assertEqual(small_store.get("small", "missing"), "missing")
        small_store.clear()

    @override_settings(SECRET_KEY="")
    def test_pickle_needs_a_secret(self) -> None:
        with self.assertRaises(ImproperlyConfigured):
            self.build("memory://?namespace=nosecret")
        # With a serializer of one's own, no SECRET_KEY is needed.
        plain = self.build("memory://?namespace=nosecret", OPTIONS={"serializer": "msgpack"})
        plain.set("k", [1, 2])
        self.assertEqual(plain.get("k"), [1, 2])

    def test_pickle_error_is_both_kinds(self) -> None:
        class Unpicklable:
            def __reduce__(self) -> object:
                raise pickle.PicklingError("no")

        backend = self.build("memory://?namespace=pickling")
        for call in (
            lambda: backend.set("u", Unpicklable()),
            lambda: backend.add("u", Unpicklable()),
            lambda: backend.set_many({"u": Unpicklable()}),
        ):
            with self.assertRaises(pickle.PickleError) as caught:
                call()
            self.assertIsInstance(caught.exception, sc.SerializationError)
            self.assertIsInstance(caught.exception, PickleSerializationError)
