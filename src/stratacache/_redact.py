"""One place that turns URLs and option mappings into text safe to show.

Everything that describes a configuration (error messages, ``repr``, ``describe()``, a
sharded node's id, ``stats()``, ``health()``) goes through :func:`redact_url` or
:func:`redact`, so a password, a signing key or an encryption key never reaches a log, a
traceback or a metrics system. The rules:

* a URL's userinfo keeps the user name and shows the password as ``***``;
* an ``@`` after the host part (a password holding ``/``, ``?`` or ``#`` that was not
  percent-encoded splits the URL in the wrong place) makes everything before it userinfo,
  so a misparsed password is masked too: over-redacting a display is harmless, leaking is not;
* query parameters named in :data:`SECRET_PARAMS` show ``***``; a malformed query (which may
  be a password holding ``&`` or ``=``) is shown as ``***`` whole; the nested backend URLs of
  ``tier=``/``node=`` are redacted in turn; a ``#fragment`` is shown as ``#***``;
* a URL with nothing to hide is returned unchanged (a sharded node's id is its URL, and ids
  must not move keys on the ring).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

__all__ = ["MASK", "SECRET_PARAMS", "authority_end", "is_secret", "redact", "redact_url", "scrub"]

#: What a secret is replaced by.
MASK = "***"
#: Parameters whose values are secrets, in every configuration form.
SECRET_PARAMS = frozenset({"password", "sentinel_password", "signing_key", "encryption_keys"})
# Parameters whose values are backend URLs (layered tiers, sharded nodes, a config's url).
_NESTED_URL_PARAMS = frozenset({"tier", "tiers", "node", "nodes", "url"})
# Schemes whose URLs never carry userinfo: an '@' there belongs to a path or a nested URL.
_NO_USERINFO = frozenset({"file", "memory", "null", "layered", "sharded"})


def is_secret(name: object) -> bool:
    """True when the parameter ``name`` holds a secret (compared case-insensitively)."""
    return isinstance(name, str) and name.strip().lower() in SECRET_PARAMS


def authority_end(rest: str) -> int:
    """Where the host part of ``rest`` (a URL after ``scheme://``) ends: its first ``/?#``."""
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    return min(ends, default=len(rest))


def _redact_userinfo(userinfo: str) -> str:
    user, colon, _ = userinfo.partition(":")
    if any(c in user for c in "/?#"):
        # The '@' was found past the host part: the split is a guess, show nothing of it.
        return f"{MASK}@"
    if colon:
        return f"{user}:{MASK}@"
    return f"{user}@"


def _redact_query(query: str) -> str:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return MASK
    changed = False
    shown: list[tuple[str, str]] = []
    for name, value in pairs:
        shown_value = value
        if is_secret(name):
            shown_value = MASK
        elif name in _NESTED_URL_PARAMS:
            shown_value = redact_url(value)
        changed = changed or shown_value != value
        shown.append((name, shown_value))
    return urlencode(shown, safe="*:/@,[]") if changed else query


def redact_url(url: str) -> str:
    """``url`` with its password and secret parameters replaced by ``***`` (see the module doc)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        # Not a URL; a stray userinfo may still sit in front of an '@'.
        return f"{MASK}@{url.rpartition('@')[2]}" if "@" in url else url
    shown_userinfo = ""
    end = authority_end(rest)
    at = rest.rfind("@", 0, end)
    if at < 0 and scheme.lower() not in _NO_USERINFO:
        at = rest.rfind("@")
    if at >= 0:
        shown_userinfo = _redact_userinfo(rest[:at])
        rest = rest[at + 1 :]
    rest, hash_sign, fragment = rest.partition("#")
    head, qmark, query = rest.partition("?")
    if query:
        query = _redact_query(query)
    shown_fragment = f"#{MASK}" if hash_sign and fragment else hash_sign
    return f"{scheme}://{shown_userinfo}{head}{qmark}{query}{shown_fragment}"


def redact(value: Any) -> Any:
    """A copy of ``value`` fit to show: URLs redacted, secret entries of mappings masked.

    Lists, tuples and sets are redacted element by element (sets become lists); other
    values are returned as they are.
    """
    if isinstance(value, str):
        return redact_url(value) if ("://" in value or "@" in value) else value
    if isinstance(value, Mapping):
        return {k: MASK if is_secret(k) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return [redact(v) for v in value]
    return value


def scrub(text: str, secrets: tuple[str | bytes, ...]) -> str:
    """``text`` (a driver's error message) with every occurrence of ``secrets`` masked.

    Defence in depth for text this library does not write: a driver that echoed a
    password in an exception would otherwise pass it on.
    """
    for secret in secrets:
        shown = secret.decode("utf-8", "replace") if isinstance(secret, bytes) else secret
        if shown:
            text = text.replace(shown, MASK)
    return text
