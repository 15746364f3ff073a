"""Starlette/FastAPI response caching, through the frameworks' real TestClient (httpx)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Host, Mount, Route, Router
from starlette.testclient import TestClient

from servers import RedisServer, free_port
from stratacache import AsyncCache, ConfigurationError, InvalidArgument
from stratacache.contrib.fastapi import CacheDep, cache_dependency, get_cache
from stratacache.contrib.starlette import CacheMiddleware, cache_lifespan, cache_response
from stratacache.testing import FakeClock

# --------------------------------------------------------------------------- an app


def make_app(**options: Any) -> tuple[Starlette, dict[str, int]]:
    """An app whose endpoints count their calls, so a test can tell a hit from a miss."""
    calls: dict[str, int] = {}
    counter = itertools.count(1)

    def bump(name: str) -> int:
        calls[name] = calls.get(name, 0) + 1
        return next(counter)

    async def plain(request: Request) -> Response:
        return PlainTextResponse(f"plain {bump('plain')} {request.query_params.get('q', '')}")

    async def headers(request: Request) -> Response:
        n = bump("headers")
        spec = dict(request.query_params)
        response = PlainTextResponse(f"headers {n}")
        if "cc" in spec:
            response.headers["cache-control"] = spec["cc"]
        if "cookie" in spec:
            response.set_cookie("session", "abc")
        if "expires" in spec:
            response.headers["expires"] = spec["expires"]
        if "etag" in spec:
            response.headers["etag"] = '"app-etag"'
        return response

    async def language(request: Request) -> Response:
        n = bump("language")
        body = f"{request.headers.get('accept-language', 'en')} {n}"
        return PlainTextResponse(body, headers={"vary": "Accept-Language"})

    async def stream(request: Request) -> Response:
        bump("stream")
        size = int(request.query_params.get("size", "3"))

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(size):
                yield f"chunk{i};".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    async def missing(request: Request) -> Response:
        bump("missing")
        return PlainTextResponse("nope", status_code=404)

    @cache_response(ttl=5)
    async def marked(request: Request) -> Response:
        return JSONResponse({"n": bump("marked")})

    @cache_response(enabled=False)
    async def excluded(request: Request) -> Response:
        return JSONResponse({"n": bump("excluded")})

    async def post(request: Request) -> Response:
        return JSONResponse({"n": bump("post")})

    app = Starlette(
        routes=[
            Route("/plain", plain),
            Route("/headers", headers),
            Route("/language", language),
            Route("/stream", stream),
            Route("/missing", missing),
            Route("/marked", marked),
            Route("/excluded", excluded),
            Route("/post", post, methods=["POST", "GET"]),
        ]
    )
    app.add_middleware(CacheMiddleware, **options)
    return app, calls


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_700_000_000.0)


@pytest.fixture
def memory_client(clock: FakeClock) -> Iterator[tuple[TestClient, dict[str, int]]]:
    cache = AsyncCache("memory", clock=clock)
    app, calls = make_app(cache=cache, clock=clock, ttl=30)
    with TestClient(app) as client:
        yield client, calls


# ---------------------------------------------------------------------- the rules


def test_miss_then_hit_with_age_etag_and_304(
    memory_client: tuple[TestClient, dict[str, int]], clock: FakeClock
) -> None:
    client, calls = memory_client
    first = client.get("/plain?q=1")
    assert first.status_code == 200
    assert first.headers["x-cache"] == "MISS"
    etag = first.headers["etag"]
    clock.advance(7)
    second = client.get("/plain?q=1")
    assert second.text == first.text
    assert second.headers["x-cache"] == "HIT"
    assert second.headers["age"] == "7"
    assert second.headers["etag"] == etag
    assert calls["plain"] == 1
    assert client.get("/plain?q=2").text != first.text  # the query string is part of the key
    not_modified = client.get("/plain?q=1", headers={"if-none-match": f'W/{etag}, "other"'})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    head = client.head("/plain?q=1")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["x-cache"] == "HIT"
    assert calls["plain"] == 2
    clock.advance(30)  # past the ttl
    assert client.get("/plain?q=1").headers["x-cache"] == "MISS"


def test_first_response_answers_if_none_match_with_its_computed_etag(
    memory_client: tuple[TestClient, dict[str, int]],
) -> None:
    client, _ = memory_client
    etag = client.get("/headers?x=1").headers["etag"]
    other = client.get("/headers?x=2", headers={"if-none-match": etag})
    assert other.status_code == 200  # a different body, a different etag
    fresh = client.get("/headers?etag=1", headers={"if-none-match": '"app-etag"'})
    assert fresh.status_code == 304  # the app's own ETag is honoured on the first response


def test_request_cache_control(memory_client: tuple[TestClient, dict[str, int]], clock: FakeClock) -> None:
    client, calls = memory_client
    client.get("/plain")
    bypass = client.get("/plain", headers={"cache-control": "no-store"})
    assert "x-cache" not in bypass.headers
    assert calls["plain"] == 2
    refetch = client.get("/plain", headers={"cache-control": "no-cache"})
    assert refetch.headers["x-cache"] == "MISS"
    assert client.get("/plain").text == refetch.text  # the refetched response was stored
    clock.advance(10)
    assert client.get("/plain", headers={"cache-control": "max-age=20"}).headers["x-cache"] == "HIT"
    assert client.get("/plain", headers={"cache-control": "max-age=5"}).headers["x-cache"] == "MISS"
    assert client.get("/plain", headers={"pragma": "no-cache"}).headers["x-cache"] == "MISS"


@pytest.mark.parametrize(
    ("query", "stored"),
    [
        ("cc=no-store", False),
        ("cc=no-cache", False),
        ("cc=private, max-age=60", False),
        ("cc=max-age=0", False),
        ("cookie=1", False),
        ("cc=public, max-age=60", True),
    ],
)
def test_response_rules(memory_client: tuple[TestClient, dict[str, int]], query: str, stored: bool) -> None:
    client, calls = memory_client
    client.get(f"/headers?{query}")
    second = client.get(f"/headers?{query}")
    assert (second.headers.get("x-cache") == "HIT") is stored
    assert calls["headers"] == (1 if stored else 2)


def test_s_maxage_beats_max_age_beats_ttl(
    memory_client: tuple[TestClient, dict[str, int]], clock: FakeClock
) -> None:
    client, _ = memory_client
    client.get("/headers?cc=max-age=100, s-maxage=3")
    client.get("/headers?cc=max-age=100")
    clock.advance(5)
    assert client.get("/headers?cc=max-age=100, s-maxage=3").headers["x-cache"] == "MISS"
    clock.advance(60)  # 65 s: past the middleware's ttl (30), within max-age
    assert client.get("/headers?cc=max-age=100").headers["x-cache"] == "HIT"


def test_expires_and_only_if_cached(
    memory_client: tuple[TestClient, dict[str, int]], clock: FakeClock
) -> None:
    client, calls = memory_client
    in_10s = formatdate(clock() + 10, usegmt=True)
    client.get("/headers", params={"expires": in_10s})
    assert client.get("/headers", params={"expires": in_10s}).headers["x-cache"] == "HIT"
    clock.advance(11)
    # Expired in the cache; the app's response is already past its Expires: not stored.
    assert "x-cache" not in client.get("/headers", params={"expires": in_10s}).headers
    client.get("/headers", params={"expires": "not a date"})  # invalid: already expired
    assert "x-cache" not in client.get("/headers", params={"expires": "not a date"}).headers
    assert calls["headers"] == 4
    assert client.get("/plain", headers={"cache-control": "only-if-cached"}).status_code == 504
    assert "plain" not in calls
    client.get("/plain")
    assert client.get("/plain", headers={"cache-control": "only-if-cached"}).status_code == 200


def test_authorized_requests_bypass_by_default(clock: FakeClock) -> None:
    app, calls = make_app(cache=AsyncCache("memory", clock=clock))
    with TestClient(app) as client:
        for headers in ({"authorization": "Bearer t"}, {"cookie": "session=1"}):
            client.get("/plain", headers=headers)
            assert "x-cache" not in client.get("/plain", headers=headers).headers
        assert calls["plain"] == 4
    app, calls = make_app(cache=AsyncCache("memory", clock=clock), cache_authorized=True)
    with TestClient(app) as client:
        client.get("/plain", headers={"authorization": "Bearer t"})
        assert client.get("/plain", headers={"authorization": "Bearer t"}).headers["x-cache"] == "HIT"


def test_vary_keeps_variants_apart(memory_client: tuple[TestClient, dict[str, int]]) -> None:
    client, calls = memory_client
    fr = client.get("/language", headers={"accept-language": "fr"})
    de = client.get("/language", headers={"accept-language": "de"})
    assert fr.text.startswith("fr")
    assert de.text.startswith("de")
    assert client.get("/language", headers={"accept-language": "fr"}).text == fr.text
    again = client.get("/language", headers={"accept-language": "de"})
    assert again.text == de.text
    assert again.headers["x-cache"] == "HIT"
    assert calls["language"] == 2


def test_only_get_and_cacheable_statuses(memory_client: tuple[TestClient, dict[str, int]]) -> None:
    client, calls = memory_client
    client.post("/post")
    client.post("/post")
    assert calls["post"] == 2
    assert client.get("/missing").status_code == 404
    assert client.get("/missing").status_code == 404
    assert calls["missing"] == 2
    assert client.head("/plain").headers.get("x-cache") is None  # a HEAD miss is not stored
    assert client.get("/plain").headers["x-cache"] == "MISS"


def test_streaming_is_forwarded_and_stored(clock: FakeClock) -> None:
    app, calls = make_app(cache=AsyncCache("memory", clock=clock), max_body_size=64)
    with TestClient(app) as client:
        first = client.get("/stream?size=4")
        assert first.text == "chunk0;chunk1;chunk2;chunk3;"
        assert "etag" not in first.headers  # streamed before the body was known
        second = client.get("/stream?size=4")
        assert second.text == first.text
        assert second.headers["x-cache"] == "HIT"
        assert second.headers["etag"].startswith('"')
        big = client.get("/stream?size=20")  # 140 bytes > max_body_size
        assert big.text.endswith("chunk19;")
        assert client.get("/stream?size=20").text == big.text
        assert calls["stream"] == 3


def test_route_decorator_and_only_marked(clock: FakeClock) -> None:
    app, calls = make_app(cache=AsyncCache("memory", clock=clock), only_marked=True, clock=clock)
    with TestClient(app) as client:
        client.get("/plain")
        client.get("/plain")
        assert calls["plain"] == 2  # unmarked
        assert client.get("/marked").json() == client.get("/marked").json()
        clock.advance(6)  # the route's own ttl is 5
        assert client.get("/marked").headers["x-cache"] == "MISS"
        client.get("/excluded")
        client.get("/excluded")
        assert calls["excluded"] == 2


async def test_a_body_sent_another_way_is_passed_on_not_stored(clock: FakeClock) -> None:
    async def pathsend_app(scope: Any, receive: Any, send: Any) -> None:
        # What a FileResponse sends under a server with the pathsend extension.
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]})
        await send({"type": "http.response.pathsend", "path": "/dev/null"})

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    cache = AsyncCache("memory", clock=clock)
    middleware = CacheMiddleware(pathsend_app, cache=cache, clock=clock)
    scope = {"type": "http", "method": "GET", "path": "/f", "headers": [], "query_string": b""}
    await middleware(scope, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.pathsend"]
    assert (await cache.stats()).items == 0


def test_a_failing_cache_never_fails_a_request() -> None:
    down = AsyncCache(f"redis://127.0.0.1:{free_port()}/0?timeout=0.5&connect_timeout=0.5&retries=0")
    app, calls = make_app(cache=down)
    with TestClient(app) as client:
        assert client.get("/plain").status_code == 200
        assert client.get("/plain").status_code == 200
    assert calls["plain"] == 2


# ------------------------------------------------------------------- redis, fastapi


def test_fastapi_over_redis_with_lifespan_dependency_and_decorator(redis_server: RedisServer) -> None:
    app = FastAPI(lifespan=cache_lifespan(redis_server.url, namespace="web-test"))
    app.add_middleware(CacheMiddleware, only_marked=True)
    views = itertools.count(1)

    @app.get("/items/{item_id}")
    @cache_response(ttl=60)
    async def read_item(item_id: int, cache: CacheDep) -> dict[str, Any]:
        return {"item": item_id, "view": next(views), "counter": await cache.incr(f"views:{item_id}")}

    @app.get("/live")
    async def live(cache: CacheDep) -> dict[str, Any]:
        return {"view": next(views), "cached": await cache.exists("views:1")}

    with TestClient(app) as client:
        cache = app.state.stratacache
        assert isinstance(cache, AsyncCache)
        first = client.get("/items/1")
        assert first.headers["x-cache"] == "MISS"
        second = client.get("/items/1")
        assert second.json() == first.json() == {"item": 1, "view": 1, "counter": 1}
        assert second.headers["x-cache"] == "HIT"
        assert client.get("/items/2").json()["view"] == 2
        assert client.get("/live").json() == {"view": 3, "cached": True}
        assert client.get("/live").json()["view"] == 4  # not marked: not cached
        assert client.get("/items/1", headers={"if-none-match": first.headers["etag"]}).status_code == 304
        client.portal.call(cache.clear)  # type: ignore[union-attr]
    assert cache.closed  # the lifespan closed it


def test_starlette_streaming_and_vary_over_redis(redis_server: RedisServer) -> None:
    async def endpoint(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"a" * 10
            yield b"b" * 10

        return StreamingResponse(chunks(), headers={"vary": "accept"})

    app = Starlette(
        routes=[Route("/s", endpoint)],
        lifespan=cache_lifespan(redis_server.url, namespace="web-stream"),
    )
    app.add_middleware(CacheMiddleware)
    with TestClient(app) as client:
        client.portal.call(app.state.stratacache.clear)  # type: ignore[union-attr]
        assert client.get("/s", headers={"accept": "x"}).headers["x-cache"] == "MISS"
        hit = client.get("/s", headers={"accept": "x"})
        assert hit.content == b"a" * 10 + b"b" * 10
        assert hit.headers["x-cache"] == "HIT"
        assert client.get("/s", headers={"accept": "y"}).headers["x-cache"] == "MISS"


# ------------------------------------------------------------------ bad arguments


def test_bad_arguments() -> None:
    app, _ = make_app(cache=AsyncCache("memory"))

    def build(**options: Any) -> CacheMiddleware:
        return CacheMiddleware(app, **options)

    with pytest.raises(InvalidArgument, match="cache must be an AsyncCache"):
        build(cache="memory://")
    with pytest.raises(InvalidArgument, match="ttl"):
        build(ttl=0)
    with pytest.raises(InvalidArgument, match="only_marked"):
        build(only_marked="yes")
    with pytest.raises(InvalidArgument, match="max_body_size"):
        build(max_body_size=-1)
    with pytest.raises(InvalidArgument, match="statuses"):
        build(statuses=[500])
    with pytest.raises(InvalidArgument, match="key_prefix"):
        build(key_prefix=None)
    with pytest.raises(InvalidArgument, match="clock"):
        build(clock=5)
    with pytest.raises(InvalidArgument, match="ttl"):
        cache_response(ttl=-1)
    with pytest.raises(InvalidArgument, match="enabled"):
        cache_response(enabled=None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="endpoint"):
        cache_response()(42)  # type: ignore[type-var]
    with pytest.raises(InvalidArgument, match="cache must be"):
        cache_lifespan(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="options"):
        cache_lifespan(AsyncCache("memory"), namespace="x")
    with pytest.raises(InvalidArgument, match="state_key"):
        cache_lifespan("memory://", state_key="not an identifier")
    with pytest.raises(InvalidArgument, match="state_key"):
        cache_dependency("")


def test_missing_cache_is_a_configuration_error() -> None:
    app, _ = make_app()  # no cache= and no lifespan
    with TestClient(app) as client, pytest.raises(ConfigurationError, match="'stratacache'"):
        client.get("/plain")
    api = FastAPI()

    @api.get("/")
    async def root(cache: CacheDep) -> str:
        return "unreachable"

    with TestClient(api) as client, pytest.raises(ConfigurationError, match="cache_lifespan"):
        client.get("/")
    assert get_cache.__doc__


# ------------------------------------------------ repeated header lines, mounts, RFC 9111


def repeated_headers_app(clock: FakeClock) -> tuple[Starlette, dict[str, int]]:
    """Endpoints whose responses repeat a header on several lines (a list, RFC 9110 5.3)."""
    calls: dict[str, int] = {}

    def respond(name: str, body: str, lines: list[tuple[bytes, bytes]]) -> Response:
        calls[name] = calls.get(name, 0) + 1
        response = PlainTextResponse(f"{body} {calls[name]}")
        response.raw_headers.extend(lines)
        return response

    async def private(request: Request) -> Response:
        return respond(
            "private", "secret", [(b"cache-control", b"private"), (b"cache-control", b"max-age=60")]
        )

    async def public(request: Request) -> Response:
        return respond("public", "shared", [(b"cache-control", b"public"), (b"cache-control", b"max-age=60")])

    async def varied(request: Request) -> Response:
        language = request.headers.get("accept-language", "en")
        return respond("varied", language, [(b"vary", b"Accept-Encoding"), (b"vary", b"Accept-Language")])

    async def cookies(request: Request) -> Response:
        return respond("cookies", "c", [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")])

    app = Starlette(
        routes=[
            Route("/private", private),
            Route("/public", public),
            Route("/varied", varied),
            Route("/cookies", cookies),
        ]
    )
    app.add_middleware(CacheMiddleware, cache=AsyncCache("memory", clock=clock), clock=clock)
    return app, calls


def test_repeated_response_header_lines_are_read_as_one_list(clock: FakeClock) -> None:
    app, calls = repeated_headers_app(clock)
    with TestClient(app) as client:
        client.get("/private")
        second = client.get("/private")
        assert "x-cache" not in second.headers  # `private` on its own line still counts
        assert calls["private"] == 2
        client.get("/public")
        hit = client.get("/public")
        assert hit.headers["x-cache"] == "HIT"
        # Stored and replayed line by line, as the application sent them.
        assert hit.headers.get_list("cache-control") == ["public", "max-age=60"]
        english = {"accept-language": "en", "accept-encoding": "gzip"}
        french = {"accept-language": "fr", "accept-encoding": "gzip"}
        assert client.get("/varied", headers=english).text == "en 1"
        assert client.get("/varied", headers=french).text == "fr 2"  # not the English page
        assert client.get("/varied", headers=english).headers["x-cache"] == "HIT"
        assert client.get("/varied", headers={**french, "accept-encoding": "br"}).text == "fr 3"
        client.get("/cookies")
        assert "x-cache" not in client.get("/cookies").headers
        assert calls == {"private": 2, "public": 1, "varied": 3, "cookies": 2}


def mounted_app(clock: FakeClock, **options: Any) -> tuple[Starlette, dict[str, int]]:
    calls: dict[str, int] = {}

    def bump(name: str) -> Response:
        calls[name] = calls.get(name, 0) + 1
        return JSONResponse({"n": calls[name]})

    @cache_response(enabled=False)
    async def excluded(request: Request) -> Response:
        return bump("excluded")

    @cache_response(ttl=5)
    async def marked(request: Request) -> Response:
        return bump("marked")

    async def plain(request: Request) -> Response:
        return bump("plain")

    inner = [Route("/excluded", excluded), Route("/marked", marked), Route("/plain", plain)]
    app = Starlette(
        routes=[
            Mount("/api", routes=inner),
            Mount("/deep", routes=[Mount("/v1", routes=[Route("/marked/{id}", marked)])]),
            Host("testserver", app=Router(routes=[Route("/host/excluded", excluded)])),
        ]
    )
    app.add_middleware(CacheMiddleware, cache=AsyncCache("memory", clock=clock), clock=clock, **options)
    return app, calls


@pytest.mark.parametrize("only_marked", [False, True])
def test_marks_apply_to_routes_inside_a_mount(clock: FakeClock, only_marked: bool) -> None:
    app, calls = mounted_app(clock, only_marked=only_marked)
    with TestClient(app) as client:
        client.get("/api/excluded")
        assert "x-cache" not in client.get("/api/excluded").headers
        client.get("/api/marked")
        assert client.get("/api/marked").headers["x-cache"] == "HIT"
        clock.advance(6)  # the route's own ttl (5), inside the middleware's (60)
        assert client.get("/api/marked").headers["x-cache"] == "MISS"
        client.get("/deep/v1/marked/1")
        assert client.get("/deep/v1/marked/1").headers["x-cache"] == "HIT"
        client.get("/host/excluded")
        assert "x-cache" not in client.get("/host/excluded").headers
        client.get("/api/plain")
        assert (client.get("/api/plain").headers.get("x-cache") == "HIT") is not only_marked
        assert calls == {"excluded": 4, "marked": 3, "plain": 1 if not only_marked else 2}


def test_marks_apply_to_fastapi_included_routers_and_mounted_apps(clock: FakeClock) -> None:
    app = FastAPI()
    app.add_middleware(
        CacheMiddleware, cache=AsyncCache("memory", clock=clock), clock=clock, only_marked=True
    )
    router = APIRouter()
    sub = FastAPI()
    views = itertools.count(1)

    @router.get("/items/{item_id}")
    @cache_response(ttl=60)
    async def read_item(item_id: int) -> dict[str, int]:
        return {"item": item_id, "view": next(views)}

    @sub.get("/off")
    @cache_response(enabled=False)
    async def off() -> dict[str, int]:
        return {"view": next(views)}

    @sub.get("/on")
    @cache_response()
    async def on() -> dict[str, int]:
        return {"view": next(views)}

    app.include_router(router, prefix="/v2")
    app.mount("/sub", sub)
    with TestClient(app) as client:
        assert client.get("/v2/items/1").json() == client.get("/v2/items/1").json()
        assert client.get("/v2/items/1").headers["x-cache"] == "HIT"
        assert client.get("/sub/off").json() != client.get("/sub/off").json()
        assert client.get("/sub/on").json() == client.get("/sub/on").json()
        assert client.get("/sub/on").headers["x-cache"] == "HIT"


def raw_app(headers: list[tuple[bytes, bytes]]) -> Any:
    """A bare ASGI app (header names as it likes them) counting its calls in ``app.calls``."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        app.calls += 1  # type: ignore[attr-defined]
        body = b"raw %d" % app.calls  # type: ignore[attr-defined]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    app.calls = 0  # type: ignore[attr-defined]
    return app


def test_not_modified_from_the_cache_repeats_validators_whatever_their_case(clock: FakeClock) -> None:
    inner = raw_app([(b"ETag", b'"v1"'), (b"Cache-Control", b"max-age=60"), (b"Vary", b"Accept")])
    app = CacheMiddleware(inner, cache=AsyncCache("memory", clock=clock), clock=clock)
    with TestClient(app) as client:
        client.get("/")
        not_modified = client.get("/", headers={"if-none-match": '"v1"'})
        assert not_modified.status_code == 304
        assert not_modified.headers["x-cache"] == "HIT"
        assert not_modified.headers["etag"] == '"v1"'
        assert not_modified.headers["cache-control"] == "max-age=60"
        assert not_modified.headers["vary"] == "Accept"
        assert inner.calls == 1


def test_age_from_upstream_counts_toward_freshness(clock: FakeClock) -> None:
    inner = raw_app([(b"cache-control", b"max-age=60"), (b"Age", b"50")])
    app = CacheMiddleware(inner, cache=AsyncCache("memory", clock=clock), clock=clock)
    with TestClient(app) as client:
        client.get("/")
        clock.advance(3)
        hit = client.get("/")
        assert hit.headers["x-cache"] == "HIT"
        assert hit.headers["age"] == "53"  # its age when it reached us, plus its time here
        assert hit.headers.get_list("age") == ["53"]
        clock.advance(8)  # 61 s old: past max-age although stored only 11 s ago
        assert client.get("/").headers["x-cache"] == "MISS"
        assert inner.calls == 2
    stale = raw_app([(b"cache-control", b"max-age=60"), (b"age", b"60")])
    app = CacheMiddleware(stale, cache=AsyncCache("memory", clock=clock), clock=clock)
    with TestClient(app) as client:
        client.get("/")
        assert "x-cache" not in client.get("/").headers  # arrived already stale: not stored
        assert stale.calls == 2


def test_included_router_marks_are_read_after_routing(clock: FakeClock) -> None:
    # FastAPI keeps an included router as one route the middleware cannot look into before
    # routing: its marks are applied from the endpoint the router chose.
    app = FastAPI()
    app.add_middleware(CacheMiddleware, cache=AsyncCache("memory", clock=clock), clock=clock)
    router = APIRouter()
    views = itertools.count(1)

    @router.get("/off")
    @cache_response(enabled=False)
    async def off() -> dict[str, int]:
        return {"view": next(views)}

    @router.get("/shared")
    @cache_response(cache_authorized=True)
    async def shared() -> dict[str, int]:
        return {"view": next(views)}

    @router.get("/plain")
    async def plain() -> dict[str, int]:
        return {"view": next(views)}

    app.include_router(router, prefix="/r")
    token = {"authorization": "Bearer t"}
    with TestClient(app) as client:
        client.get("/r/off")
        assert "x-cache" not in client.get("/r/off").headers
        client.get("/r/shared", headers=token)
        assert client.get("/r/shared", headers=token).headers["x-cache"] == "HIT"
        client.get("/r/plain")
        assert client.get("/r/plain").headers["x-cache"] == "HIT"
        credentialed = client.get("/r/plain", headers=token)  # its route does not allow them
        assert "x-cache" not in credentialed.headers
        assert credentialed.json()["view"] == 5
        assert client.get("/r/plain", headers=token).json()["view"] == 6  # and did not store


def test_a_sub_app_behind_middleware_is_judged_by_the_endpoint_it_routed_to(clock: FakeClock) -> None:
    calls: list[str] = []

    @cache_response(enabled=False)
    async def excluded(request: Request) -> Response:
        calls.append("excluded")
        return PlainTextResponse(str(len(calls)))

    class PassThrough:
        """A middleware around the sub-app hides its routes from a search before routing."""

        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await self.app(scope, receive, send)

    sub = Starlette(routes=[Route("/excluded", excluded)])
    app = Starlette(routes=[Mount("/sub", app=PassThrough(sub))])
    app.add_middleware(CacheMiddleware, cache=AsyncCache("memory", clock=clock), clock=clock)
    with TestClient(app) as client:
        client.get("/sub/excluded")
        assert "x-cache" not in client.get("/sub/excluded").headers
        assert calls == ["excluded", "excluded"]


def test_vary_star_anywhere_in_the_list_keeps_a_response_out(clock: FakeClock) -> None:
    for lines in (
        [(b"vary", b"Accept-Encoding, *")],
        [(b"vary", b"Accept-Encoding"), (b"vary", b"*")],
    ):
        inner = raw_app(lines)
        app = CacheMiddleware(inner, cache=AsyncCache("memory", clock=clock), clock=clock)
        with TestClient(app) as client:
            client.get("/")
            assert "x-cache" not in client.get("/").headers
            assert inner.calls == 2


def test_if_none_match_does_not_turn_a_redirect_into_304(clock: FakeClock) -> None:
    # RFC 9110 section 13.2.1: preconditions apply only where the answer would be 2xx.
    async def moved(request: Request) -> Response:
        return Response(status_code=301, headers={"location": "/new", "etag": '"r"'})

    app = Starlette(routes=[Route("/old", moved)])
    app.add_middleware(CacheMiddleware, cache=AsyncCache("memory", clock=clock), clock=clock)
    with TestClient(app, follow_redirects=False) as client:
        first = client.get("/old", headers={"if-none-match": '"r"'})
        assert first.status_code == 301
        assert first.headers["x-cache"] == "MISS"
        hit = client.get("/old", headers={"if-none-match": '"r"'})
        assert hit.status_code == 301
        assert hit.headers["x-cache"] == "HIT"
        assert hit.headers["location"] == "/new"


@pytest.mark.parametrize(
    "lines",
    [
        [(b"cache-control", b"max-age=soon")],
        [(b"cache-control", b"s-maxage=-1, max-age=60")],
        [(b"cache-control", b"max-age=0"), (b"cache-control", b"max-age=600")],
    ],
)
def test_invalid_or_repeated_freshness_is_read_strictly(
    clock: FakeClock, lines: list[tuple[bytes, bytes]]
) -> None:
    # RFC 9111 section 4.2.1: invalid freshness counts as stale; of repeated directives the
    # first one is used.
    inner = raw_app(lines)
    app = CacheMiddleware(inner, cache=AsyncCache("memory", clock=clock), clock=clock)
    with TestClient(app) as client:
        client.get("/")
        assert "x-cache" not in client.get("/").headers
        assert inner.calls == 2
