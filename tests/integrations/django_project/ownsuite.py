"""Django's own cache test suite (``BaseCacheTests``) run against stratacache's backend.

Django's tests/cache/tests.py ships in Django's sdist, not in the wheel: test_django.py
fetches the sdist of the installed Django and puts its ``tests`` directory on the path
through ``DJANGO_SUITE_DIR`` (settings.py then installs its ``cache`` app). Nothing of
Django's is copied into this repository.

The ``cull`` and ``zero_cull`` caches are left out, as Django does for its Redis backend:
they test LocMemCache's culling (MAX_ENTRIES / CULL_FREQUENCY). Over ``memory://`` the
suite's ``time.sleep`` advances settings.CLOCK, so its expiry tests take no wall time.
"""

from unittest import mock

from cache.tests import BaseCacheTests, caches_setting_for_tests  # type: ignore[import-not-found]
from django.conf import settings
from django.test import TestCase, override_settings


@override_settings(
    CACHES=caches_setting_for_tests(
        base={
            "BACKEND": "stratacache.contrib.django.StratacacheCache",
            "LOCATION": settings.LOCATION,
            "OPTIONS": settings.OPTIONS,
        },
        exclude={"cull", "zero_cull"},
    )
)
class StratacacheCacheTests(BaseCacheTests, TestCase):  # type: ignore[misc]
    """Every test of Django's BaseCacheTests, over the backend under test."""

    def setUp(self) -> None:
        super().setUp()
        if settings.IN_PROCESS:
            patcher = mock.patch("time.sleep", side_effect=settings.CLOCK.advance)
            patcher.start()
            self.addCleanup(patcher.stop)
