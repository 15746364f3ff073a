"""Eviction policies, by name: ``lru``, ``lfu``, ``fifo``, ``random`` and ``tinylfu``.

A policy tracks keys and chooses eviction victims; the store that uses one keeps the values
and decides when to evict (see :mod:`.base` for the contract). Policies are looked up by name
so that configuration (``memory://?policy=tinylfu``) can name them; users plug in their own
with :func:`register_policy`::

    class MRUPolicy(Policy): ...
    register_policy("mru", MRUPolicy)
    policy = make_policy("mru", 1000)
"""

from __future__ import annotations

from typing import Any

from ..._exceptions import ConfigurationError
from .base import Policy, check_capacity
from .fifo import FIFOPolicy
from .lfu import LFUPolicy
from .lru import LRUPolicy
from .rand import RandomPolicy
from .sketch import FrequencySketch
from .tinylfu import TinyLFUPolicy

__all__ = [
    "POLICIES",
    "FIFOPolicy",
    "FrequencySketch",
    "LFUPolicy",
    "LRUPolicy",
    "Policy",
    "RandomPolicy",
    "TinyLFUPolicy",
    "make_policy",
    "policy_names",
    "register_policy",
]

#: name -> policy class. Read it freely; add to it with :func:`register_policy`.
POLICIES: dict[str, type[Policy]] = {
    cls.name: cls for cls in (LRUPolicy, LFUPolicy, FIFOPolicy, RandomPolicy, TinyLFUPolicy)
}


def policy_names() -> list[str]:
    """The registered policy names, sorted."""
    return sorted(POLICIES)


def register_policy(name: str, cls: type[Policy], *, replace: bool = False) -> None:
    """Make ``cls`` available to :func:`make_policy` (and to configuration) as ``name``.

    ``cls`` must be a :class:`Policy` subclass. A name that is taken by another class is an
    error unless ``replace=True``, so a plug-in cannot silently take over ``"lru"``.
    """
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"policy name must be a non-empty str, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Policy)):
        raise ConfigurationError(
            f"policy {name!r}: {cls!r} is not a subclass of stratacache.core.policies.Policy"
        )
    current = POLICIES.get(name)
    if current is not None and current is not cls and not replace:
        raise ConfigurationError(
            f"policy name {name!r} is already registered to {current.__qualname__}; "
            "pass replace=True to replace it"
        )
    POLICIES[name] = cls


def make_policy(name: str, capacity: int, **kwargs: Any) -> Policy:
    """Create the policy registered as ``name`` for ``capacity`` total weight.

    Keyword arguments go to the policy's constructor (``seed=`` for ``random`` and ``tinylfu``,
    for instance). An unknown name or a capacity that is not a positive ``int`` raises
    :class:`~stratacache.ConfigurationError`.
    """
    cls = POLICIES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ConfigurationError(f"unknown policy {name!r}; valid: {', '.join(policy_names())}")
    check_capacity(capacity)
    try:
        return cls(capacity, **kwargs)
    except TypeError as exc:
        # A misspelt or foreign keyword (seed= for lru, say) is a configuration mistake.
        raise ConfigurationError(f"policy {name!r}: {exc}") from exc
