"""HOST: and POST: an HTTP request sent to the port is logged and the connection dropped.

A browser tricked into posting to ``http://127.0.0.1:<port>`` sends ``POST / HTTP/1.1`` and
``Host: ...`` lines, which the inline protocol would read as commands (the cross-protocol
scripting attack). Redis answers neither: it logs "Possible SECURITY ATTACK detected" and
closes at once, dropping the replies of the same read still unsent; so do we. Like Redis,
this runs before authentication.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import command

if TYPE_CHECKING:
    from ..connection import Client

logger = logging.getLogger("stratacache.server")


def _security_warning(client: Client, args: list[bytes]) -> Any:
    logger.warning(
        "Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: "
        "commands to the server (%r from client id=%d addr=%s). This is likely due to an "
        "attacker attempting to use Cross Protocol Scripting to compromise the cache server. "
        "Connection aborted.",
        args[0][:16].decode("latin-1"),
        client.id,
        client.address,
    )
    client.close()
    return None  # never sent: the connection is closing


# "hidden": Redis 7 special-cases these names rather than listing them in COMMAND.
command("host:", arity=-1, flags="no_auth loading stale hidden", group="server")(_security_warning)
command("post", arity=-1, flags="no_auth loading stale hidden", group="server")(_security_warning)
