"""A Memcached listener for ``stratacache serve``: memcached's text and meta protocol over
the server's stores (see docs/memcached-listener.md).

* :mod:`.protocol`: the sans-IO request parser and token readers;
* :mod:`.items`: memcached items (value, client flags, CAS) over a database;
* :mod:`.commands`: the command handlers;
* :mod:`.listener`: the sockets on the server's loop and the connections.
"""

from __future__ import annotations

from .listener import McConnection, MemcacheListener

__all__ = ["McConnection", "MemcacheListener"]
