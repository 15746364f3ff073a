"""``stratacache serve``: a Redis-protocol cache server on the memory engine.

* :mod:`.resp`: the sans-IO RESP request parser and reply encoder;
* :mod:`.commands`: the command table, one module per command family;
* :mod:`.keyspace`: a database (Redis's keyspace) over a store of the engine;
* :mod:`.connection`: one client connection (an asyncio protocol) and its state;
* :mod:`.app`: the server (databases, clients, checks, lifecycle) and :func:`run`;
* :mod:`.config`: options, the YAML file, CONFIG GET/SET;
* :mod:`.embedded`: a server on a thread of the calling process.
"""

from __future__ import annotations

from .app import Server, run
from .config import ServerConfig, load_config
from .embedded import ServerThread

__all__ = ["Server", "ServerConfig", "ServerThread", "load_config", "run"]
