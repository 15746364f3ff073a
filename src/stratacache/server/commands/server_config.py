"""CONFIG REWRITE: the running configuration written back to its file (see ``..reload``).

A module of its own, after ``server`` (modules load in name order; CONFIG is defined there).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..._exceptions import ConfigurationError
from ..reload import rewrite_config
from ..resp import ErrorReply
from . import subcommand

if TYPE_CHECKING:
    from ..connection import Client

__all__: list[str] = []

logger = logging.getLogger("stratacache.server")


@subcommand("config", "rewrite", arity=2, flags="admin noscript loading stale")
def config_rewrite(client: Client, args: list[bytes]) -> Any:
    """Rewrite the configuration file with the in memory configuration."""
    config = client.server.config
    try:
        path = rewrite_config(config)
    except ConfigurationError as exc:
        if config.source.startswith("<"):
            raise ErrorReply("ERR The server is running without a config file") from None
        raise ErrorReply(f"ERR Rewriting config file: {exc}") from None
    except OSError as exc:
        logger.warning("CONFIG REWRITE of %s failed: %s", config.source, exc)
        raise ErrorReply(f"ERR Rewriting config file: {exc.strerror or exc}") from None
    logger.info("CONFIG REWRITE: configuration written to %s", path)
    return "OK"
