"""HTTP response caching for Starlette and FastAPI, as pure ASGI middleware over an AsyncCache.

>>> app = Starlette(routes=..., lifespan=cache_lifespan("redis://127.0.0.1:6379/0"))
>>> app.add_middleware(CacheMiddleware, ttl=60)

What is cached, following RFC 9111 for a shared cache:

* only ``GET`` responses with status 200, 203, 204, 300, 301, 308 (``HEAD`` is answered from
  a stored ``GET``), and only when the response allows it: ``Cache-Control: no-store``,
  ``no-cache``, ``private`` or ``max-age=0``, a ``Set-Cookie`` header or ``*`` in ``Vary``
  keep a response out of the cache (a header sent on several lines is one list). Its
  lifetime is ``s-maxage``, else ``max-age``, else what ``Expires`` leaves, else ``ttl``,
  less the ``Age`` it arrived with;
* requests with ``Authorization`` or ``Cookie`` are neither answered from nor stored in the
  cache unless ``cache_authorized=True`` (their responses usually depend on who asks); a
  request's ``Cache-Control: no-store`` bypasses the cache, ``no-cache`` refetches (and
  stores the fresh response), ``max-age=N`` accepts only a stored response at most N old,
  ``only-if-cached`` gets ``504`` instead of reaching the application on a miss;
* ``Vary``: the response's varied request headers become part of the key, so each variant
  is stored apart (the last response's ``Vary`` list is kept per URL);
* ETag: a stored response keeps the application's ``ETag`` or gets a strong one computed
  from its body; ``If-None-Match`` matching it on a 2xx is answered ``304 Not Modified``;
* streaming: the body is forwarded chunk by chunk as the application produces it while a
  copy is kept; a body larger than ``max_body_size`` is passed on and not stored;
* headers ``Age`` (seconds since stored) and ``X-Cache: HIT`` on responses from the cache,
  ``X-Cache: MISS`` on ones the application produced for a cacheable request;
* :func:`cache_response` marks: looked up before routing (through ``Mount``/``Host``) to answer
  from the cache, and read from the endpoint the router chose to decide what is stored.

A cache that fails (``CacheError``) never fails a request: the request goes to the
application and the failure is logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from .._async.cache import AsyncCache
from .._exceptions import CacheError, ConfigurationError, InvalidArgument

__all__ = [
    "CACHEABLE_STATUSES",
    "CacheMiddleware",
    "RoutePolicy",
    "cache_lifespan",
    "cache_response",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger("stratacache.http")

#: Statuses a shared cache may store by default (RFC 9110 section 15.1, minus the error
#: statuses: an application's transient 404 or 410 should not outlive the request).
CACHEABLE_STATUSES: frozenset[int] = frozenset({200, 203, 204, 300, 301, 308})
#: The attribute :func:`cache_response` sets on an endpoint.
POLICY_ATTRIBUTE = "__stratacache_policy__"
DEFAULT_STATE_KEY = "stratacache"
# Response headers that a 304 repeats (RFC 9110 section 15.4.5), besides ours.
_NOT_MODIFIED_HEADERS = frozenset(
    {b"cache-control", b"content-location", b"date", b"etag", b"expires", b"vary"}
)
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"age", b"x-cache"})


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """Per-route settings set by :func:`cache_response`; None fields take the middleware's."""

    ttl: float | None = None
    enabled: bool = True
    cache_authorized: bool | None = None


def _check_ttl(ttl: object, parameter: str = "ttl") -> float:
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < float("inf"):
        raise InvalidArgument(f"{parameter} must be a positive number of seconds, got {ttl!r}")
    return float(ttl)


def cache_response(
    ttl: float | None = None, *, enabled: bool = True, cache_authorized: bool | None = None
) -> Callable[[F], F]:
    """Mark an endpoint (Starlette or FastAPI) for :class:`CacheMiddleware`, with its own ``ttl``.

    ``enabled=False`` keeps the route out of the cache. With ``CacheMiddleware(only_marked=True)``
    only marked routes are cached. The endpoint is returned unchanged (FastAPI still reads its
    signature), so the decorator may sit above or below ``@app.get(...)``.
    """
    if ttl is not None:
        _check_ttl(ttl)
    if not isinstance(enabled, bool):
        raise InvalidArgument(f"enabled must be a bool, got {enabled!r}")
    if cache_authorized is not None and not isinstance(cache_authorized, bool):
        raise InvalidArgument(f"cache_authorized must be a bool or None, got {cache_authorized!r}")
    policy = RoutePolicy(ttl=ttl, enabled=enabled, cache_authorized=cache_authorized)

    def mark(endpoint: F) -> F:
        if not callable(endpoint):
            raise InvalidArgument(f"cache_response decorates an endpoint, got {endpoint!r}")
        setattr(endpoint, POLICY_ATTRIBUTE, policy)
        return endpoint

    return mark


def cache_lifespan(
    cache: AsyncCache | str,
    *,
    state_key: str = DEFAULT_STATE_KEY,
    lifespan: Callable[[Any], contextlib.AbstractAsyncContextManager[Any]] | None = None,
    **options: Any,
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[dict[str, Any]]]:
    """A Starlette/FastAPI ``lifespan`` that opens the cache at startup and closes it at shutdown.

    ``cache`` is an AsyncCache or a URL (``options`` are then passed to ``AsyncCache``). The
    cache is checked with ``ping()`` at startup (a down backend stops the app from starting,
    with the BackendUnavailable naming it), put in the lifespan state as ``state_key`` (so
    ``request.state.stratacache``) and on ``app.state``. ``lifespan`` wraps an existing one.
    """
    if not isinstance(cache, AsyncCache | str):
        raise InvalidArgument(f"cache must be an AsyncCache or a URL, got {type(cache).__name__}")
    if isinstance(cache, AsyncCache) and options:
        raise InvalidArgument(f"options {sorted(options)} were given with a cache object")
    if not isinstance(state_key, str) or not state_key.isidentifier():
        raise InvalidArgument(f"state_key must be an identifier, got {state_key!r}")
    if lifespan is not None and not callable(lifespan):
        raise InvalidArgument(f"lifespan must be callable, got {lifespan!r}")

    @contextlib.asynccontextmanager
    async def run(app: Any) -> AsyncIterator[dict[str, Any]]:
        opened = AsyncCache(cache, **options) if isinstance(cache, str) else cache
        try:
            await opened.ping()
            state = getattr(app, "state", None)
            if state is not None:
                setattr(state, state_key, opened)
            if lifespan is None:
                yield {state_key: opened}
                return
            async with lifespan(app) as inner:
                yield {**(inner or {}), state_key: opened}
        finally:
            await opened.close()

    return run


def _directives(value: bytes | None) -> dict[str, str | None]:
    """``Cache-Control`` parsed into lower-case directives (``{"max-age": "60", "private": None}``)."""
    found: dict[str, str | None] = {}
    if not value:
        return found
    for part in value.decode("latin-1").split(","):
        name, sep, argument = part.strip().partition("=")
        if name:
            # A repeated directive: the first one counts (RFC 9111 section 4.2.1).
            found.setdefault(name.strip().lower(), argument.strip().strip('"') if sep else None)
    return found


def _seconds(directives: Mapping[str, str | None], name: str) -> int | None:
    raw = directives.get(name)
    if raw is None or not raw.isdigit():
        return None
    return int(raw)


def _initial_age(response_headers: Mapping[bytes, bytes]) -> int:
    """The response's ``Age`` on arrival (RFC 9111 section 5.1); an invalid one counts as 0."""
    raw = response_headers.get(b"age", b"").strip()
    return int(raw) if raw.isdigit() else 0


def _etag_matches(if_none_match: bytes, etag: str) -> bool:
    """Weak comparison (RFC 9110 section 13.1.2): ``W/`` prefixes are ignored."""
    text = if_none_match.decode("latin-1").strip()
    if text == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in text.split(","))


def _policy_of(endpoint: object) -> RoutePolicy | None:
    policy = getattr(endpoint, POLICY_ATTRIBUTE, None)
    return policy if isinstance(policy, RoutePolicy) else None


def _tree_shape(routes: Any) -> tuple[int, ...]:
    """Identity and length of every route list in the tree: changes when a route is added."""
    shape = [id(routes), len(routes)]
    for route in routes:
        children = getattr(route, "routes", None)
        if children is not None and not hasattr(route, "endpoint"):
            shape.extend(_tree_shape(children))
    return tuple(shape)


def _may_be_marked(routes: Any) -> bool:
    for route in routes:
        if hasattr(route, "endpoint"):
            if _policy_of(route.endpoint) is not None:
                return True
        elif getattr(route, "routes", None) is not None:
            if _may_be_marked(route.routes):
                return True
        elif getattr(route, "matches", None) is not None:
            return True  # a route we cannot look into may lead to a marked endpoint
    return False


def _find_policy(routes: Any, scope: Scope) -> tuple[RoutePolicy | None, bool]:
    for route in routes:
        matches = getattr(route, "matches", None)
        if matches is None:
            continue
        children = getattr(route, "routes", None)
        if not hasattr(route, "endpoint") and children is None:
            # A route of a kind we cannot look into (FastAPI's included router, whose
            # matching has side effects on the scope): leave the decision to after routing.
            return None, False
        match, child_scope = matches(scope)
        if match.name != "FULL":
            continue
        if hasattr(route, "endpoint"):
            return _policy_of(route.endpoint), True
        # A Mount or Host: the router hands the request on, with the child scope, to the
        # sub-router, which takes its first full match in turn (or answers 404).
        return _find_policy(children, {**scope, **child_scope})
    return None, True


class CacheMiddleware:
    """Response caching for an ASGI app (see the module doc for the rules).

    ``cache``: the AsyncCache to store in; None takes the one :func:`cache_lifespan` put in the
    lifespan state under ``state_key``. ``ttl``: lifetime of responses that set neither
    ``s-maxage`` nor ``max-age``. ``cache_authorized``: also cache requests that carry
    ``Authorization`` or ``Cookie``. ``cache_set_cookie``: also store responses that set
    cookies (a shared cache would hand one user's cookie to everyone: leave it off unless
    the cookie is not per user). ``only_marked``: cache only routes decorated with
    :func:`cache_response`. ``max_body_size``: larger bodies are streamed, not stored.
    ``key_prefix``: prefix of the cache keys. ``clock``: unix time, for ``Age``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        cache: AsyncCache | None = None,
        ttl: float = 60.0,
        cache_authorized: bool = False,
        cache_set_cookie: bool = False,
        only_marked: bool = False,
        max_body_size: int = 1 << 20,
        key_prefix: str = "http:",
        state_key: str = DEFAULT_STATE_KEY,
        statuses: Iterable[int] = CACHEABLE_STATUSES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if cache is not None and not isinstance(cache, AsyncCache):
            raise InvalidArgument(
                f"cache must be an AsyncCache (ASGI apps are async), got {type(cache).__name__}"
            )
        for name, flag in (
            ("cache_authorized", cache_authorized),
            ("cache_set_cookie", cache_set_cookie),
            ("only_marked", only_marked),
        ):
            if not isinstance(flag, bool):
                raise InvalidArgument(f"{name} must be a bool, got {flag!r}")
        if isinstance(max_body_size, bool) or not isinstance(max_body_size, int) or max_body_size < 0:
            raise InvalidArgument(f"max_body_size must be an int >= 0, got {max_body_size!r}")
        if not isinstance(key_prefix, str):
            raise InvalidArgument(f"key_prefix must be a str, got {key_prefix!r}")
        if not isinstance(state_key, str) or not state_key:
            raise InvalidArgument(f"state_key must be a non-empty str, got {state_key!r}")
        codes = frozenset(statuses) if isinstance(statuses, Iterable) else None
        if not codes or not all(isinstance(c, int) and 200 <= c < 400 for c in codes):
            raise InvalidArgument(f"statuses must be HTTP statuses in 200..399, got {statuses!r}")
        if not callable(clock):
            raise InvalidArgument(f"clock must be callable, got {clock!r}")
        self.app = app
        self.cache = cache
        self.ttl = _check_ttl(ttl)
        self.cache_authorized = cache_authorized
        self.cache_set_cookie = cache_set_cookie
        self.only_marked = only_marked
        self.max_body_size = max_body_size
        self.key_prefix = key_prefix
        self.state_key = state_key
        self.statuses = codes
        self.clock = clock
        self._marked_seen: tuple[int, ...] | None = None
        self._any_marked = False

    # ------------------------------------------------------------------ lookup

    def _cache_for(self, scope: Scope) -> AsyncCache:
        if self.cache is not None:
            return self.cache
        state = scope.get("state") or {}
        found = state.get(self.state_key)
        if not isinstance(found, AsyncCache):
            raise ConfigurationError(
                f"CacheMiddleware has no cache: pass cache=... or run the app with "
                f"lifespan=cache_lifespan(...) (state key {self.state_key!r})"
            )
        return found

    def _route_policy(self, scope: Scope) -> tuple[RoutePolicy | None, bool]:
        """The mark of the route the router will reach, and whether that is known yet.

        Routing happens after middleware, so the route is found the way the router will find
        it: the first route that fully matches, searched into ``Mount``/``Host`` sub-routers
        with the scope they would pass on. A route of another kind (FastAPI's included
        routers) cannot be looked into: the answer is then "not known", and the mark is read
        from ``scope["endpoint"]`` once the application has routed the request.
        """
        app = scope.get("app")
        routes = getattr(getattr(app, "router", None), "routes", None) or ()
        # Matching costs a regex per route: skip it while no route is marked (remembered per
        # route tree shape, so routes added later are seen).
        seen = _tree_shape(routes)
        if self._marked_seen != seen:
            self._marked_seen = seen
            self._any_marked = _may_be_marked(routes)
        if not self._any_marked:
            return None, True
        return _find_policy(routes, dict(scope))  # a copy: matching must not touch the request

    def _effective(self, policy: RoutePolicy | None) -> tuple[bool, bool]:
        """(cacheable at all, cacheable for requests with credentials) under a route's mark."""
        enabled = policy.enabled if policy is not None else not self.only_marked
        authorized = policy.cache_authorized if policy is not None else None
        return enabled, self.cache_authorized if authorized is None else authorized

    def _base_key(self, scope: Scope, headers: Mapping[bytes, bytes]) -> str:
        target = b"%s|%s|%s|%s" % (
            scope.get("scheme", "http").encode(),
            headers.get(b"host", b""),
            scope.get("raw_path") or scope["path"].encode(),
            scope.get("query_string", b""),
        )
        return self.key_prefix + hashlib.sha256(target).hexdigest()

    @staticmethod
    def _variant(base: str, vary: list[str], headers: Mapping[bytes, bytes]) -> str:
        digest = hashlib.sha256()
        for name in vary:
            digest.update(name.encode("latin-1") + b"\0" + headers.get(name.encode("latin-1"), b"") + b"\0")
        return f"{base}:{digest.hexdigest()[:32]}"

    # -------------------------------------------------------------------- ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer from the cache, or call the app and store what it may store."""
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        policy, known = self._route_policy(scope)
        enabled, allow_credentials = self._effective(policy)
        if known and not enabled:
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            lowered = name.lower()
            headers[lowered] = headers[lowered] + b", " + value if lowered in headers else value
        request_cc = _directives(headers.get(b"cache-control"))
        credentials = b"authorization" in headers or b"cookie" in headers
        if "no-store" in request_cc or (known and credentials and not allow_credentials):
            await self.app(scope, receive, send)
            return
        cache = self._cache_for(scope)
        base = self._base_key(scope, headers)
        if "no-cache" not in request_cc and b"no-cache" not in headers.get(b"pragma", b"").lower():
            served = await self._serve(
                cache,
                scope,
                base=base,
                headers=headers,
                request_cc=request_cc,
                # Route not known before routing: the entry says whether its route allowed
                # requests with credentials (it exists only if its route allowed caching).
                need_credentials_flag=credentials and not known,
                send=send,
            )
            if served:
                return
        if "only-if-cached" in request_cc:
            # RFC 9111 section 5.2.1.7: the client wants no request to the origin.
            await send({"type": "http.response.start", "status": 504, "headers": [(b"x-cache", b"MISS")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["method"] == "HEAD":
            # A HEAD response has no body to store; the GET that follows will fill the cache.
            await self.app(scope, receive, send)
            return
        await self._fill(
            cache,
            scope,
            receive,
            send,
            base=base,
            request_headers=headers,
            policy=policy,
            credentials=credentials,
        )

    async def _serve(
        self,
        cache: AsyncCache,
        scope: Scope,
        *,
        base: str,
        headers: Mapping[bytes, bytes],
        request_cc: Mapping[str, str | None],
        need_credentials_flag: bool,
        send: Send,
    ) -> bool:
        try:
            vary = await cache.get(base + ":vary")
            if not isinstance(vary, list):
                return False
            entry = await cache.get(self._variant(base, vary, headers))
        except CacheError as exc:
            logger.warning("response cache lookup failed: %s", type(exc).__name__, exc_info=exc)
            return False
        if not isinstance(entry, dict) or (need_credentials_flag and not entry.get("credentials")):
            return False
        age = max(0, int(self.clock() - entry["stored"]))
        max_age = _seconds(request_cc, "max-age")
        if max_age is not None and age > max_age:
            return False
        stored_headers = [(bytes(n), bytes(v)) for n, v in entry["headers"]]
        extra = [(b"age", str(age).encode()), (b"x-cache", b"HIT")]
        if_none_match = headers.get(b"if-none-match")
        if (
            if_none_match is not None
            # RFC 9110 section 13.2.1: preconditions apply only to what would be a 2xx.
            and 200 <= entry["status"] < 300
            and _etag_matches(if_none_match, entry["etag"])
        ):
            kept = [(n, v) for n, v in stored_headers if n.lower() in _NOT_MODIFIED_HEADERS]
            await send({"type": "http.response.start", "status": 304, "headers": kept + extra})
            await send({"type": "http.response.body", "body": b""})
            return True
        await send(
            {"type": "http.response.start", "status": entry["status"], "headers": stored_headers + extra}
        )
        body = b"" if scope["method"] == "HEAD" else bytes(entry["body"])
        await send({"type": "http.response.body", "body": body})
        return True

    def _lifetime(self, response_headers: Mapping[bytes, bytes], default: float) -> float | None:
        """Seconds to keep the response, or None when it must not be stored."""
        if b"set-cookie" in response_headers and not self.cache_set_cookie:
            return None
        if any(member.strip() == b"*" for member in response_headers.get(b"vary", b"").split(b",")):
            return None  # RFC 9110 section 12.5.5: `*` anywhere in the list
        cc = _directives(response_headers.get(b"cache-control"))
        if "no-store" in cc or "no-cache" in cc or "private" in cc:
            return None
        if any(name in cc and _seconds(cc, name) is None for name in ("s-maxage", "max-age")):
            return None  # invalid freshness information: stale (RFC 9111 section 4.2.1)
        seconds: float | None = _seconds(cc, "s-maxage")
        if seconds is None:
            seconds = _seconds(cc, "max-age")
        if seconds is None and b"expires" in response_headers:
            # Expires is a date: what it leaves from now already counts the response's age.
            seconds = self._expires_in(response_headers)
        elif seconds is None:
            seconds = default - _initial_age(response_headers)
        else:
            # RFC 9111 section 4.2: fresh while the lifetime exceeds the age, and a response
            # an upstream cache kept (its `Age`) arrives that old already.
            seconds -= _initial_age(response_headers)
        return float(seconds) if seconds > 0 else None

    def _expires_in(self, response_headers: Mapping[bytes, bytes]) -> float:
        """Seconds until ``Expires`` (RFC 9111 section 5.3); an invalid date means already expired."""
        try:
            expires = parsedate_to_datetime(response_headers[b"expires"].decode("latin-1")).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return 0.0
        return expires - self.clock()

    async def _fill(
        self,
        cache: AsyncCache,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        base: str,
        request_headers: Mapping[bytes, bytes],
        policy: RoutePolicy | None,
        credentials: bool,
    ) -> None:
        start: Message | None = None
        stored_credentials = False
        lifetime: float | None = None
        response_headers: dict[bytes, bytes] = {}
        chunks: list[bytes] = []
        size = 0
        started = False
        not_modified = False  # a 304 went out instead of the app's response: drop its body

        async def capture(message: Message) -> None:
            nonlocal start, lifetime, size, started, not_modified, stored_credentials
            if message["type"] == "http.response.start":
                start = message
                # A field sent on several lines is one comma-separated list (RFC 9110
                # section 5.3): `private` on its own line still counts. The lines themselves
                # are forwarded and stored as they are.
                response_headers.clear()
                for name, value in message.get("headers", ()):
                    lowered = bytes(name).lower()
                    previous = response_headers.get(lowered)
                    response_headers[lowered] = (
                        bytes(value) if previous is None else previous + b", " + bytes(value)
                    )
                # Routed by now: the endpoint the router chose (the router writes it into the
                # shared scope) decides what is stored, even where the search before routing
                # could not see it (an included router, a sub-app behind its own middleware).
                route = _policy_of(scope["endpoint"]) if "endpoint" in scope else policy
                enabled, stored_credentials = self._effective(route)
                ttl = route.ttl if route is not None and route.ttl is not None else self.ttl
                lifetime = (
                    self._lifetime(response_headers, ttl)
                    if message["status"] in self.statuses
                    and enabled
                    and (stored_credentials or not credentials)
                    else None
                )
                return  # held back until the first body chunk: a one-chunk body gets an ETag
            if message["type"] != "http.response.body" or start is None:
                if start is not None and not started:
                    # Another way to send the body (an ASGI extension such as pathsend):
                    # the held-back head goes first, and nothing is stored.
                    started = True
                    lifetime = None
                    await send(start)
                await send(message)
                return
            body = bytes(message.get("body", b""))
            more = bool(message.get("more_body", False))
            if lifetime is not None:
                size += len(body)
                if size > self.max_body_size:
                    lifetime = None
                    chunks.clear()
                else:
                    chunks.append(body)
            if not started:
                started = True
                not_modified = await self._send_start(
                    start,
                    response_headers,
                    first=body,
                    more=more,
                    lifetime=lifetime,
                    request_headers=request_headers,
                    send=send,
                )
            if not more and lifetime is not None:
                # Stored before the last chunk goes out: once the client has the whole
                # response the server may cancel this task (Starlette does, for streams).
                await self._store(
                    cache,
                    base,
                    start=start,
                    response_headers=response_headers,
                    body=b"".join(chunks),
                    lifetime=lifetime,
                    request_headers=request_headers,
                    credentials=stored_credentials,
                )
            if not not_modified:
                await send(message)

        await self.app(scope, receive, capture)
        if start is not None and not started:
            # The app ended without a body message: send what it started.
            await send(start)

    async def _send_start(
        self,
        start: Message,
        response_headers: dict[bytes, bytes],
        *,
        first: bytes,
        more: bool,
        lifetime: float | None,
        request_headers: Mapping[bytes, bytes],
        send: Send,
    ) -> bool:
        """Send the response start (with X-Cache and an ETag); True when a 304 went out instead."""
        outgoing = list(start.get("headers", ()))
        if lifetime is not None:
            outgoing.append((b"x-cache", b"MISS"))
            if b"etag" not in response_headers and not more:
                # The whole body is here: give it a strong ETag now, so the first response
                # already carries the validator later hits will answer 304 against.
                etag = self._etag(first)
                response_headers[b"etag"] = etag.encode()
                outgoing.append((b"etag", etag.encode()))
            etag_value = response_headers.get(b"etag")
            if_none_match = request_headers.get(b"if-none-match")
            if (
                etag_value is not None
                and if_none_match is not None
                and 200 <= start["status"] < 300
                and not more
                and _etag_matches(if_none_match, etag_value.decode("latin-1"))
            ):
                kept = [(n, v) for n, v in outgoing if bytes(n).lower() in _NOT_MODIFIED_HEADERS]
                await send({"type": "http.response.start", "status": 304, "headers": kept})
                await send({"type": "http.response.body", "body": b""})
                return True
        await send({**start, "headers": outgoing})
        return False

    @staticmethod
    def _etag(body: bytes) -> str:
        return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'

    async def _store(
        self,
        cache: AsyncCache,
        base: str,
        *,
        start: Message,
        response_headers: Mapping[bytes, bytes],
        body: bytes,
        lifetime: float,
        request_headers: Mapping[bytes, bytes],
        credentials: bool,
    ) -> None:
        vary = sorted(
            {
                name.strip().lower()
                for name in response_headers.get(b"vary", b"").decode("latin-1").split(",")
                if name.strip()
            }
        )
        etag = response_headers.get(b"etag", b"").decode("latin-1") or self._etag(body)
        kept = [
            [bytes(name), bytes(value)]
            for name, value in start.get("headers", ())
            if bytes(name).lower() not in _HOP_BY_HOP
        ]
        if not any(name.lower() == b"etag" for name, _ in kept):
            kept.append([b"etag", etag.encode("latin-1")])
        entry = {
            "status": start["status"],
            "headers": kept,
            "body": body,
            "etag": etag,
            # Backdated by the age it arrived with, so `Age` on hits counts its whole life.
            "stored": self.clock() - _initial_age(response_headers),
            "credentials": credentials,
        }
        try:
            await cache.set(self._variant(base, vary, request_headers), entry, ttl=lifetime)
            # The URL's Vary list, read first by every lookup to build the variant's key.
            await cache.set(base + ":vary", vary, ttl=lifetime)
        except CacheError as exc:
            logger.warning("response cache store failed: %s", type(exc).__name__, exc_info=exc)
