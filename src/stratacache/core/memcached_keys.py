"""Facade keys -> Memcached wire keys: safe, at most 250 bytes, injective.

Memcached's text protocol separates tokens by spaces and ends commands with ``\\r\\n``; a
key must be 1..250 bytes with no whitespace or control characters. Facade keys are any
``str`` (unicode, 10,000 characters, spaces, ``\\r\\n`` ...), so every key goes through one
pure mapping before it touches the wire. The mapping is injective by construction, using
one reserved character, ``~`` (the only printable ASCII character that can never pass
through unchanged):

========================  ===============================================  ==================
kind                      wire key                                         how to recognise
========================  ===============================================  ==================
plain, safe               the key itself (``[!-}]{1,250}``, no ``~``)       no ``~`` at all
namespaced, safe          ``<prefix>~<generation>~<rest>``                  ``~`` not first;
                                                                           digits/dots after
namespace generation      ``<prefix>~gen``                                 ``~gen`` at the end,
                                                                           one ``~``
fallback generation       ``<prefix>~gen~<owner node>``                    ``gen`` between two
                                                                           ``~``
anything else (hashed)    ``~<readable>~<sha256 hex>``                     ``~`` first
========================  ===============================================  ==================

* Safe keys stay readable, so ``memcached-tool`` dumps and ``stats cachedump`` make sense.
* Unsafe or long keys (or keys that contain ``~``) become ``~`` + up to 100 characters of
  the key with every unsafe character replaced by ``_`` (readable, not relied on) + ``~`` +
  the SHA-256 of a domain-tagged encoding of the key. Distinct keys get distinct hashes
  (collision resistance), and a hashed key starts with ``~`` while a safe one never does,
  so a raw key can never collide with a hashed one. The domain tag (``k``/``n``/``g``/``f``)
  keeps plain, namespaced and generation keys apart even inside the hash.
* A generation segment is digits, ``.`` and ``_`` only, never ``gen``, so a namespaced key
  never takes the form of a (fallback) generation key.
* The whole namespaced form is checked against 250 bytes; if it does not fit, it is hashed.

A key containing ``\\r\\n`` therefore always reaches the server as hex digits: it can never
end a command early and smuggle in another one (``x\\r\\nflush_all\\r\\n``).
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "MAX_KEY_LENGTH",
    "RESERVED",
    "fallback_generation_key",
    "generation_key",
    "hashed_key",
    "is_safe",
    "namespaced_key",
    "wire_key",
    "wire_keys",
]

#: Memcached's limit on a key, in bytes.
MAX_KEY_LENGTH = 250
#: The character no safe key may contain; it marks every structured or hashed wire key.
RESERVED = "~"
#: Characters of the original key kept (sanitised) in front of a hash, for readability.
_READABLE = 100

# 0x21 '!' .. 0x7D '}': printable ASCII without space, DEL and '~' (0x7E).
_SAFE = re.compile(r"[!-}]{1,250}").fullmatch
_UNSAFE_CHAR = re.compile(r"[^!-}]")


def is_safe(key: str) -> bool:
    """True when ``key`` can go on the wire unchanged (1..250 chars of ``[!-}]``)."""
    return _SAFE(key) is not None


def _readable(text: str) -> str:
    return _UNSAFE_CHAR.sub("_", text[:_READABLE])


def hashed_key(readable: str, tagged: bytes) -> bytes:
    """``~<readable>~<sha256(tagged)>``: the form of every key that cannot go as it is."""
    digest = hashlib.sha256(tagged).hexdigest()
    return f"{RESERVED}{_readable(readable)}{RESERVED}{digest}".encode("ascii")


# Safe keys met lately -> their wire bytes. The mapping is pure, and a dict lookup costs a
# fraction of the regex check on every get; cleared when full, so it holds at most
# _KNOWN_MAX keys of at most 250 characters (about 1 MB) and follows the working set.
_KNOWN: dict[str, bytes] = {}
_KNOWN_MAX = 4096


def wire_key(key: str) -> bytes:
    """The wire key of a key outside every attached namespace."""
    known = _KNOWN.get(key)
    if known is not None:
        return known
    if _SAFE(key) is not None:
        if len(_KNOWN) >= _KNOWN_MAX:
            _KNOWN.clear()
        known = _KNOWN[key] = key.encode("ascii")
        return known
    return hashed_key(key, b"k" + key.encode("utf-8", "surrogatepass"))


def wire_keys(keys: list[str]) -> list[bytes]:
    """:func:`wire_key` of every key, in order (known keys looked up in one C-level pass)."""
    wire = list(map(_KNOWN.get, keys))
    if None in wire:
        wire = [wire_key(key) if wk is None else wk for key, wk in zip(keys, wire, strict=True)]
    return wire  # type: ignore[return-value]


def namespaced_key(prefix: str, generation: str, rest: str) -> bytes:
    """The wire key of ``prefix + rest`` while the namespace ``prefix`` is at ``generation``.

    ``generation`` is the namespace's current generation (decimal digits, ``_``-joined with
    the fallback generation on a failover node; ``.``-joined for nested namespaces).
    Changing it changes every key of the namespace, which is how ``clear()`` empties a
    namespace in O(1).
    """
    if _SAFE(prefix) is not None and (not rest or _SAFE(rest) is not None):
        candidate = f"{prefix}{RESERVED}{generation}{RESERVED}{rest}"
        if len(candidate) <= MAX_KEY_LENGTH:
            return candidate.encode("ascii")
    # Length-prefix the namespace so that (prefix, rest) splits are unambiguous in the hash.
    tagged = f"n{len(prefix)}:{prefix}{generation}:{rest}".encode("utf-8", "surrogatepass")
    return hashed_key(prefix + rest, tagged)


def generation_key(prefix: str) -> bytes:
    """The wire key holding the current generation of the namespace ``prefix``."""
    if _SAFE(prefix) is not None and len(prefix) + 4 <= MAX_KEY_LENGTH:
        return f"{prefix}{RESERVED}gen".encode("ascii")
    return hashed_key(prefix, b"g" + prefix.encode("utf-8", "surrogatepass"))


def fallback_generation_key(prefix: str, owner: str) -> bytes:
    """The wire key of the generation of namespace ``prefix`` for keys of node ``owner``.

    It lives on the node that stands in for ``owner`` while ``owner`` is dead, and governs
    the keys written there in its place (see ``docs/memcached.md``, "Namespaces").
    """
    candidate = f"{prefix}{RESERVED}gen{RESERVED}{owner}"
    if _SAFE(prefix) is not None and _SAFE(owner) is not None and len(candidate) <= MAX_KEY_LENGTH:
        return candidate.encode("ascii")
    tagged = f"f{len(prefix)}:{prefix}{owner}".encode("utf-8", "surrogatepass")
    return hashed_key(prefix, tagged)
