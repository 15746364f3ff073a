"""Views cached by Django's own machinery (cache_page) over the stratacache backend."""

import itertools

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import cache_page

_calls = itertools.count(1)


@cache_page(60)
def counted(request: HttpRequest) -> HttpResponse:
    """Returns how often the view body ran: a cached page keeps its first number."""
    return HttpResponse(f"call {next(_calls)}")


async def async_counter(request: HttpRequest) -> JsonResponse:
    """An async view that counts its hits with the cache's async API."""
    await cache.aadd("async-hits", 0, timeout=None)
    hits = await cache.aincr("async-hits")
    return JsonResponse({"hits": hits})
