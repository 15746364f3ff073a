"""Build a backend object from any of its forms: a URL, a backend name, a dict, or an object.

Written once and shared: the ``Cache``/``AsyncCache`` facade builds its backend here, and so
does the layered backend for each of its tiers (a tier may be given in every form a cache's
backend may).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from ._config import CACHE_PARAMS, ParsedConfig, parse_mapping, parse_url
from ._exceptions import ConfigurationError
from ._registry import load_backend

__all__ = ["build_backend", "make_backend", "spec_config"]


def make_backend(config: ParsedConfig, overrides: Mapping[str, Any], *, asynchronous: bool) -> Any:
    """Instantiate ``config.backend`` with its parsed options, ``overrides`` taking precedence.

    An override the backend's constructor does not take is a ConfigurationError naming it.
    """
    cls = load_backend(config.backend, asynchronous=asynchronous)
    kwargs = dict(config.backend_options)
    accepted = inspect.signature(cls).parameters
    for name, value in overrides.items():
        if name not in accepted:
            valid = sorted(set(accepted) | set(CACHE_PARAMS))
            raise ConfigurationError(
                f"unknown option {name!r} for backend {config.backend!r}; valid: {', '.join(valid)}"
            )
        kwargs[name] = value
    return cls(**kwargs)


def spec_config(spec: str | Mapping[str, Any]) -> ParsedConfig:
    """Parse a URL (``"redis://h:6379/0"``), a backend name (``"memory"``) or a config dict."""
    if isinstance(spec, str):
        return parse_url(spec) if "://" in spec else parse_mapping({"backend": spec})
    if isinstance(spec, Mapping):
        return parse_mapping(spec)
    raise ConfigurationError(
        "a backend is given as a URL, a backend name, a mapping or a backend object, "
        f"not {type(spec).__name__}"
    )


def build_backend(
    spec: Any, *, asynchronous: bool, what: str = "backend", owner: str = "the cache that uses it"
) -> Any:
    """A backend object for ``spec``: returned as is if it already is one, else built.

    ``spec`` is a backend object of the right flavour (``AsyncBackend`` when ``asynchronous``),
    a URL, a backend name, or a mapping (``{"backend": "redis", "port": 6380}`` or
    ``{"url": ...}``). Cache-level options (namespace, serializer, default_ttl, ...) are
    refused with a ConfigurationError naming them and ``what`` (e.g. ``"tier 1"``): they
    belong on the cache that uses the backend (``owner``), not on the backend.
    """
    from ._async.backends.base import AsyncBackend
    from ._sync.backends.base import Backend

    if isinstance(spec, AsyncBackend if asynchronous else Backend):
        return spec
    if isinstance(spec, (AsyncBackend, Backend)):
        flavour = "an AsyncBackend" if asynchronous else "a sync Backend"
        raise ConfigurationError(
            f"{what}: {type(spec).__name__} is a backend of the other flavour; this needs {flavour}"
        )
    try:
        config = spec_config(spec)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{what}: {exc}") from exc
    if config.cache_options:
        names = ", ".join(sorted(config.cache_options))
        raise ConfigurationError(
            f"{what}: cache options ({names}) cannot be given to a backend; set them on {owner}"
        )
    try:
        return make_backend(config, {}, asynchronous=asynchronous)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{what}: {exc}") from exc
