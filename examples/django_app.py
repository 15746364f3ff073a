"""Django: stratacache as the CACHES backend, a cache_page view, the low-level cache API.

A whole Django project in one file (settings, a URLconf, two views), driven by Django's
test Client. Needs `pip install 'stratacache[django,redis]'`. Set STRATACACHE_REDIS_URL
(default redis://127.0.0.1:6379/0).
"""

import os

import django
from django.conf import settings
from django.core.cache import cache, caches
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client
from django.urls import path
from django.views.decorators.cache import cache_page

settings.configure(
    DEBUG=False,
    SECRET_KEY="example-only-not-secret",  # also signs the cached pickles (see the Django guide)
    ALLOWED_HOSTS=["testserver"],
    ROOT_URLCONF=__name__,
    CACHES={
        "default": {
            "BACKEND": "stratacache.contrib.django.StratacacheCache",
            "LOCATION": os.environ.get("STRATACACHE_REDIS_URL", "redis://127.0.0.1:6379/0"),
            "TIMEOUT": 300,
            "KEY_PREFIX": "site",
            "OPTIONS": {"namespace": "django-example"},  # clear() removes only these keys
        }
    },
)
django.setup()

renders = {"catalogue": 0}


@cache_page(60)  # the whole response, cached in Redis for a minute
def catalogue(request: HttpRequest) -> HttpResponse:
    renders["catalogue"] += 1
    return JsonResponse({"products": ["tea", "coffee"], "render": renders["catalogue"]})


def product(request: HttpRequest, sku: str) -> HttpResponse:
    # Django's own API: get_or_set, incr, ... all go to the same stratacache.Cache.
    data = cache.get_or_set(f"product:{sku}", lambda: {"sku": sku, "price": 1250}, timeout=120)
    cache.add(f"views:{sku}", 0, timeout=None)  # atomic: only the first request creates it
    views = cache.incr(f"views:{sku}")
    return JsonResponse({**data, "views": views})


urlpatterns = [path("catalogue/", catalogue), path("products/<str:sku>/", product)]

if __name__ == "__main__":
    cache.clear()
    client = Client()
    first, second = client.get("/catalogue/"), client.get("/catalogue/")
    print("catalogue   ->", second.json(), f"(2 requests, view ran {renders['catalogue']} time(s))")
    print("headers     ->", second["Cache-Control"], "| same body:", first.content == second.content)
    for _ in range(3):
        body = client.get("/products/tea/").json()
    print("product     ->", body)
    backing = caches["default"].stratacache  # the stratacache.Cache, for what Django has no word for
    # Django's key "product:tea" is "<KEY_PREFIX>:<VERSION>:product:tea" in the namespace.
    raw_key = "site:1:product:tea"
    print("stratacache ->", backing.get(raw_key), "ttl", round(backing.ttl(raw_key)))
    cache.clear()
