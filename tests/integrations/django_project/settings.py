"""Settings of the Django project that tests stratacache's CACHES backend.

Run by ``python -m django test`` in a subprocess (tests/integrations/test_django.py), with
``STRATACACHE_DJANGO_LOCATION`` holding the stratacache URL under test. Over ``memory://``
the cache runs on a FakeClock (``CLOCK``), so expiry is tested by advancing it.
"""

import os
import sys

from stratacache.testing import FakeClock

SECRET_KEY = "stratacache-django-tests-not-secret"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["testserver"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "cacheapp"]
ROOT_URLCONF = "cacheapp.urls"
MIDDLEWARE: list[str] = []
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
TEST_RUNNER = "django.test.runner.DiscoverRunner"

# Django's own cache tests (ownsuite.py): the tests directory of Django's sdist.
SUITE_DIR = os.environ.get("DJANGO_SUITE_DIR")
if SUITE_DIR:
    sys.path.insert(0, SUITE_DIR)
    INSTALLED_APPS.append("cache")

LOCATION = os.environ.get("STRATACACHE_DJANGO_LOCATION", "memory://")
IN_PROCESS = LOCATION.startswith("memory://")
CLOCK = FakeClock()
# A namespace: clear() must not empty the database other tests of the session use.
OPTIONS: dict[str, object] = {"namespace": "djangotests"}
if IN_PROCESS:
    OPTIONS["clock"] = CLOCK

_BACKEND = "stratacache.contrib.django.StratacacheCache"
CACHES = {
    "default": {"BACKEND": _BACKEND, "LOCATION": LOCATION, "OPTIONS": OPTIONS},
    # The same store seen through another prefix, version and key function.
    "prefixed": {"BACKEND": _BACKEND, "LOCATION": LOCATION, "OPTIONS": OPTIONS, "KEY_PREFIX": "site"},
    "v2": {"BACKEND": _BACKEND, "LOCATION": LOCATION, "OPTIONS": OPTIONS, "VERSION": 2},
    "custom_key": {
        "BACKEND": _BACKEND,
        "LOCATION": LOCATION,
        "OPTIONS": OPTIONS,
        "KEY_FUNCTION": "cacheapp.keys.reversed_key",
    },
    "short": {"BACKEND": _BACKEND, "LOCATION": LOCATION, "OPTIONS": OPTIONS, "TIMEOUT": 5},
    "forever": {"BACKEND": _BACKEND, "LOCATION": LOCATION, "OPTIONS": OPTIONS, "TIMEOUT": None},
}
