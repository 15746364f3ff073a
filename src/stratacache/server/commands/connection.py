"""Connection commands: PING ECHO QUIT SELECT HELLO AUTH RESET and CLIENT.

Authentication follows Redis 7: the ``default`` user has ``requirepass`` as its password (or
the one of a ``users: default:`` entry), named users come from the ``users:`` section of the
configuration. ``AUTH password`` authenticates as ``default``; ``AUTH user password`` and
``HELLO ... AUTH user password`` as any user. Passwords are compared in constant time.

CLIENT is a container command: its subcommands are registered with
:func:`~stratacache.server.commands.subcommand` (another module adds ``CLIENT TRACKING``).
"""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING, Any

from .. import app
from ..errors import SYNTAX, wrong_arity
from ..resp import ErrorReply, Push, Verbatim
from . import command, run_subcommand, subcommand

if TYPE_CHECKING:
    from ..app import Server
    from ..connection import Client

WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."
NO_PASSWORD = (
    "ERR AUTH <password> called without any password configured for the default user. "
    "Are you sure your configuration is correct?"
)
HELLO_NOAUTH = (
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
    "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
    "select the RESP protocol version at the same time"
)
BAD_NAME = "ERR Client names cannot contain spaces, newlines or special characters."
NO_SUCH_CLIENT = "ERR No such client"


@command("ping", arity=-1, flags="fast", group="connection")
def ping(client: Client, args: list[bytes]) -> Any:
    """Ping the server."""
    if len(args) > 2:
        raise wrong_arity("ping")
    if (client.channels or client.patterns or client.shard_channels) and not client.resp3:
        # In subscribed RESP2 mode PING answers with a pub/sub-shaped array.
        return Push([b"pong", args[1] if len(args) == 2 else b""])
    return args[1] if len(args) == 2 else "PONG"


@command("echo", arity=2, flags="loading stale fast", group="connection")
def echo(client: Client, args: list[bytes]) -> Any:
    """Return the given string."""
    return args[1]


@command("quit", arity=-1, flags="noscript loading stale fast no_auth allow_busy", group="connection")
def quit_(client: Client, args: list[bytes]) -> Any:
    """Close the connection (after this reply)."""
    client.close_after_reply = True
    return "OK"


@command("select", arity=2, flags="loading stale fast", group="connection")
def select(client: Client, args: list[bytes]) -> Any:
    """Change the selected database."""
    try:
        index = int(args[1])
    except ValueError:
        raise ErrorReply("ERR value is not an integer or out of range") from None
    if index != 0 and client.server.cluster is not None:
        raise ErrorReply("ERR SELECT is not allowed in cluster mode")
    if not 0 <= index < len(client.server.databases):
        raise ErrorReply("ERR DB index is out of range")
    client.db = client.server.databases[index]
    return "OK"


# ------------------------------------------------------------------ authentication


def default_password(server: Server) -> str | None:
    """The default user's password: requirepass, else a ``users: default:`` entry's."""
    if server.config.requirepass:
        return server.config.requirepass
    default = server.config.users.get("default")
    return default.password if default is not None else None


def authenticate(server: Server, user: str, password: bytes) -> bool:
    """Whether ``user`` exists, is enabled and has ``password`` (a user without a password,
    like Redis's ``nopass``, takes any)."""
    if user == "default":
        settings = server.config.users.get("default")
        if settings is not None and not settings.enabled:
            return False
        expected = default_password(server)
    else:
        named = server.config.users.get(user)
        if named is None or not named.enabled:
            return False
        expected = named.password
    if expected is None:
        return True
    return hmac.compare_digest(password, expected.encode())


@command("auth", arity=-2, flags="noscript loading stale fast no_auth allow_busy", group="connection")
def auth(client: Client, args: list[bytes]) -> Any:
    """Authenticate to the server."""
    if len(args) > 3:
        raise ErrorReply(SYNTAX)
    server = client.server
    if len(args) == 2:
        if default_password(server) is None:
            raise ErrorReply(NO_PASSWORD)
        user, password = "default", args[1]
    else:
        user, password = args[1].decode("latin-1"), args[2]
    if not authenticate(server, user, password):
        raise ErrorReply(WRONGPASS)
    client.user = user
    return "OK"


def _check_name(name: bytes, error: str = BAD_NAME) -> None:
    # Redis accepts printable ASCII without spaces ('!' to '~').
    for byte in name:
        if byte < 0x21 or byte > 0x7E:
            raise ErrorReply(error)


@command("hello", arity=-1, flags="noscript loading stale fast no_auth allow_busy", group="connection")
def hello(client: Client, args: list[bytes]) -> Any:
    """Handshake with the server: protocol version, authentication, name."""
    version = 0
    if len(args) >= 2:
        try:
            version = int(args[1])
        except ValueError:
            raise ErrorReply("ERR Protocol version is not an integer or out of range") from None
        if version < 2 or version > 3:
            raise ErrorReply("NOPROTO unsupported protocol version")
    credentials: tuple[bytes, bytes] | None = None
    name: bytes | None = None
    i = 2
    while i < len(args):
        option = args[i].lower()
        more = len(args) - 1 - i
        if option == b"auth" and more >= 2:
            credentials = (args[i + 1], args[i + 2])
            i += 3
        elif option == b"setname" and more >= 1:
            name = args[i + 1]
            _check_name(name)
            i += 2
        else:
            raise ErrorReply(f"ERR Syntax error in HELLO option '{args[i].decode('utf-8', 'replace')}'")
    server = client.server
    if credentials is not None:
        user = credentials[0].decode("latin-1")
        if not authenticate(server, user, credentials[1]):
            raise ErrorReply(WRONGPASS)
        client.user = user
    if client.user is None:
        raise ErrorReply(HELLO_NOAUTH)
    if name is not None:
        client.name = name
    if version:
        client.resp3 = version == 3
    return {
        b"server": b"redis",
        b"version": app.VERSION.encode(),
        b"proto": 3 if client.resp3 else 2,
        b"id": client.id,
        b"mode": b"standalone" if client.server.cluster is None else b"cluster",
        b"role": b"master",
        b"modules": [],
    }


@command("reset", arity=1, flags="noscript loading stale fast no_auth allow_busy", group="connection")
def reset(client: Client, args: list[bytes]) -> Any:
    """Reset the connection: MULTI, WATCH, subscriptions, tracking, database, protocol, name
    and authentication go back to a new connection's."""
    server = client.server
    client.multi = None
    client.multi_error = False
    server.unwatch(client)
    # The disconnect hooks are how features (pub/sub, tracking) forget a client's state.
    for hook in server.disconnect_hooks:
        hook(client)
    client.channels.clear()
    client.patterns.clear()
    client.shard_channels.clear()
    client.extra.clear()
    client.db = server.databases[0]
    client.resp3 = False
    client.name = b""
    client.user = None if server.auth_required else "default"
    return "RESET"


# -------------------------------------------------------------------------- CLIENT


@command("client", arity=-2, flags="", group="connection")
def client_(client: Client, args: list[bytes]) -> Any:
    """A container for client connection commands."""
    return run_subcommand(client, args)


@subcommand("client", "id", arity=2, flags="noscript loading stale")
def client_id(client: Client, args: list[bytes]) -> Any:
    """Return the ID of the current connection."""
    return client.id


@subcommand("client", "setname", arity=3, flags="noscript loading stale")
def client_setname(client: Client, args: list[bytes]) -> Any:
    """Set the current connection name."""
    _check_name(args[2])
    client.name = args[2]
    return "OK"


@subcommand("client", "getname", arity=2, flags="noscript loading stale")
def client_getname(client: Client, args: list[bytes]) -> Any:
    """Return the name of the current connection."""
    return client.name or None


@subcommand("client", "setinfo", arity=4, flags="noscript loading stale", since="7.2.0")
def client_setinfo(client: Client, args: list[bytes]) -> Any:
    """Set client or connection specific info (lib-name, lib-ver)."""
    attr = args[2].decode("utf-8", "replace")
    if attr.lower() not in ("lib-name", "lib-ver"):
        raise ErrorReply(f"ERR Unrecognized option '{attr}'")
    _check_name(args[3], f"ERR {attr} cannot contain spaces, newlines or special characters.")
    if attr.lower() == "lib-name":
        client.lib_name = args[3]
    else:
        client.lib_ver = args[3]
    return "OK"


def _on_off(client: Client, args: list[bytes], flag: str) -> Any:
    value = args[2].lower()
    if value == b"on":
        client.extra[flag] = True
    elif value == b"off":
        client.extra.pop(flag, None)
    else:
        raise ErrorReply(SYNTAX)
    return "OK"


@subcommand("client", "no-evict", arity=3, flags="admin noscript loading stale", since="7.0.0")
def client_no_evict(client: Client, args: list[bytes]) -> Any:
    """Set client eviction mode for the current connection (a flag here: clients are not evicted)."""
    return _on_off(client, args, "no-evict")


@subcommand("client", "no-touch", arity=3, flags="noscript loading stale", since="7.2.0")
def client_no_touch(client: Client, args: list[bytes]) -> Any:
    """Controls whether commands sent by the client will alter the LRU/LFU of the keys they access."""
    return _on_off(client, args, "no-touch")


def _flags(client: Client) -> str:
    flags = ""
    if client.channels or client.patterns or client.shard_channels:
        flags += "P"
    if client.multi is not None:
        flags += "x"
    if client.blocked is not None:
        flags += "b"
    if client.extra.get("tracking"):
        flags += "t"
    if client.dirty_cas:
        flags += "d"
    if client.close_after_reply:
        flags += "c"
    if client.extra.get("no-evict"):
        flags += "e"
    if client.extra.get("no-touch"):
        flags += "T"
    return flags or "N"


def client_line(client: Client, now: float, current: str | None = None) -> str:
    """One line of CLIENT LIST (without the newline), with Redis 7.2's fields in its order.
    ``current``: the command shown as ``cmd=`` when ``client`` is the caller (``client|list``)."""
    transport = client.transport
    fd = -1
    obl = 0
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            fd = sock.fileno()
        obl = transport.get_write_buffer_size()
    qbuf = client.parser.buffered
    multi = -1 if client.multi is None else len(client.multi)
    cmd = current or client.last_command.decode("latin-1").lower()
    return (
        f"id={client.id} addr={client.address} laddr={client.laddress} fd={fd} "
        f"name={client.name.decode('latin-1')} age={int(now - client.created)} "
        f"idle={int(time.monotonic() - client.last_interaction)} flags={_flags(client)} "
        f"db={client.db.index} sub={len(client.channels)} psub={len(client.patterns)} "
        f"ssub={len(client.shard_channels)} multi={multi} qbuf={qbuf} qbuf-free={max(0, 20474 - qbuf)} "
        f"argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl={obl} oll=0 omem={obl} "
        f"tot-mem={2048 + qbuf + obl} events={'rw' if obl else 'r'} cmd={cmd} "
        f"user={client.user or 'default'} redir={client.extra.get('tracking-redirect', -1)} "
        f"resp={3 if client.resp3 else 2} lib-name={client.lib_name.decode('latin-1')} "
        f"lib-ver={client.lib_ver.decode('latin-1')}"
    )


_TYPES = ("normal", "master", "replica", "slave", "pubsub")


def _client_type(client: Client) -> str:
    return "pubsub" if client.channels or client.patterns or client.shard_channels else "normal"


def _parse_type(value: bytes) -> str:
    kind = value.decode("utf-8", "replace").lower()
    if kind not in _TYPES:
        raise ErrorReply(f"ERR Unknown client type '{value.decode('utf-8', 'replace')}'")
    return "replica" if kind == "slave" else kind


@subcommand("client", "list", arity=-2, flags="admin noscript loading stale")
def client_list(client: Client, args: list[bytes]) -> Any:
    """Get the list of client connections."""
    kind: str | None = None
    ids: set[int] | None = None
    if len(args) == 4 and args[2].lower() == b"type":
        kind = _parse_type(args[3])
    elif len(args) >= 4 and args[2].lower() == b"id":
        ids = set()
        for raw in args[3:]:
            try:
                ident = int(raw)
            except ValueError:
                raise ErrorReply("ERR Invalid client ID") from None
            if ident <= 0:
                raise ErrorReply("ERR Invalid client ID")
            ids.add(ident)
    elif len(args) != 2:
        raise ErrorReply(SYNTAX)
    now = time.time()
    lines = []
    for other in list(client.server.clients.values()):
        if kind is not None and _client_type(other) != kind:
            continue
        if ids is not None and other.id not in ids:
            continue
        lines.append(client_line(other, now, "client|list" if other is client else None) + "\n")
    return Verbatim("".join(lines).encode("latin-1"))


@subcommand("client", "info", arity=2, flags="noscript loading stale", since="6.2.0")
def client_info(client: Client, args: list[bytes]) -> Any:
    """Return information about the current client connection."""
    return Verbatim((client_line(client, time.time(), "client|info") + "\n").encode("latin-1"))


def _kill(client: Client, victim: Client) -> None:
    if victim is client:
        client.close_after_reply = True  # the reply goes out first, as in Redis
    else:
        victim.close()


@subcommand("client", "kill", arity=-3, flags="admin noscript loading stale")
def client_kill(client: Client, args: list[bytes]) -> Any:
    """Kill the connection of a client (by address, or by filters: ID ADDR LADDR USER TYPE SKIPME)."""
    server = client.server
    if len(args) == 3:
        # The old form: CLIENT KILL ip:port, OK or an error.
        address = args[2].decode("latin-1")
        for other in list(server.clients.values()):
            if other.address == address:
                _kill(client, other)
                return "OK"
        raise ErrorReply(NO_SUCH_CLIENT)
    if len(args) % 2:
        raise ErrorReply(SYNTAX)
    ident: int | None = None
    addr: str | None = None
    laddr: str | None = None
    user: str | None = None
    kind: str | None = None
    skipme = True
    for i in range(2, len(args), 2):
        option, value = args[i].lower(), args[i + 1]
        if option == b"id":
            try:
                ident = int(value)
            except ValueError:
                ident = 0
            if ident <= 0:
                raise ErrorReply("ERR client-id should be greater than 0")
        elif option == b"addr":
            addr = value.decode("latin-1")
        elif option == b"laddr":
            laddr = value.decode("latin-1")
        elif option == b"user":
            user = value.decode("latin-1")
            if user != "default" and user not in server.config.users:
                raise ErrorReply(f"ERR No such user '{value.decode('utf-8', 'replace')}'")
        elif option == b"type":
            kind = _parse_type(value)
        elif option == b"skipme":
            answer = value.lower()
            if answer == b"yes":
                skipme = True
            elif answer == b"no":
                skipme = False
            else:
                raise ErrorReply(SYNTAX)
        else:
            raise ErrorReply(SYNTAX)
    killed = 0
    for other in list(server.clients.values()):
        if (
            (ident is not None and other.id != ident)
            or (addr is not None and other.address != addr)
            or (laddr is not None and other.laddress != laddr)
            or (user is not None and (other.user or "default") != user)
            or (kind is not None and _client_type(other) != kind)
            or (skipme and other is client)
        ):
            continue
        _kill(client, other)
        killed += 1
    return killed


_HELP = [
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.",
    "    * LIB-VER: the client lib version.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "NO-TOUCH (ON|OFF)",
    "    Will not touch LRU/LFU stats when this mode is on.",
    "HELP",
    "    Print this help.",
]


@subcommand("client", "help", arity=2, flags="loading stale", since="5.0.0")
def client_help(client: Client, args: list[bytes]) -> Any:
    """Show helpful text about the different subcommands."""
    return list(_HELP)
