"""The Lua runtime of EVAL and friends: one sandboxed Lua 5.1 state per server (lupa).

Redis runs scripts in Lua 5.1; so do we (``lupa.lua51``), so that numbers (doubles), error
messages and the standard library behave as in Redis. What a script sees, as in Redis 7:

* the globals Redis 7.0 leaves (``assert error pcall xpcall type tostring tonumber pairs
  ipairs next select unpack rawget rawset rawequal getmetatable setmetatable load loadstring
  collectgarbage gcinfo _VERSION`` and the ``string table math coroutine`` libraries) plus
  ``redis``, ``KEYS`` and ``ARGV``. No ``os``, ``io``, ``debug``, ``require``, ``loadfile``,
  ``dofile``, ``print`` or lupa's ``python`` (reading a missing global is Redis's error
  "Script attempted to access nonexistent global variable"); the global table and every
  library table are read-only ("Attempt to modify a readonly table").
  ``cjson`` (encode, decode, null) and ``bit`` (LuaBitOp) are Python callables with Redis's
  output and error texts; not provided: ``cmsgpack``, ``struct``, cjson's settings functions.
* ``redis.call``/``redis.pcall`` run a command through ``client.call`` (so users' rights,
  maxmemory, WATCH and tracking see it) after Redis's own checks and texts (unknown command,
  arity, ``noscript`` commands, writes from read-only scripts); ``redis.error_reply``,
  ``redis.status_reply``, ``redis.sha1hex``, ``redis.log`` (to the server's logger) and its
  levels, ``redis.setresp``, ``redis.set_repl`` and ``redis.replicate_commands`` (accepted, no
  replication here), ``redis.REDIS_VERSION``/``REDIS_VERSION_NUM``.
* ``pcall`` hands an error raised by ``redis.call`` to the script as its message string.
* ``math.random``/``math.randomseed`` are Redis's rand48, so seeded sequences are Redis's.
* Conversions both ways are Redis's: numbers to integers by truncation, ``false`` to null,
  ``true`` to 1, tables as arrays up to the first nil, ``{ok=...}``/``{err=...}``,
  ``{double=...}``, ``{map=...}``, ``{set=...}``; command replies to Lua as RESP2 (or RESP3
  after ``redis.setresp(3)``).

Time limit: the server is one thread, so a script cannot be stopped by SCRIPT KILL from
another client while it runs (SCRIPT KILL answers NOTBUSY). Instead a count hook checks the
clock every 100,000 instructions and stops a script that has run longer than
``lua-time-limit`` milliseconds (0: no limit) with an error; writes it made stay. Once
stopped, the hook fires on every line, so a script that catches the error with ``pcall``
cannot keep running. The Lua state's memory is capped (:data:`MAX_MEMORY`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .commands import COMMANDS
from .connection import answer_now
from .resp import Boolean, ErrorReply, NullArray, Push, Verbatim, format_double, split_inline

if TYPE_CHECKING:
    from .app import Server
    from .connection import Client

__all__ = ["MAX_MEMORY", "LuaEngine", "Script", "engine_for", "parse_shebang"]

logger = logging.getLogger("stratacache.server")

MAX_MEMORY = 512 * 1024 * 1024
"""Bytes the Lua state may allocate (tables, strings) before its allocations fail."""

MAX_NESTING = 400
"""Deepest table a script may return (Redis answers ``reached lua stack limit`` past its
Lua stack; ours is bounded by Python's recursion)."""

INT64_MIN = -(2**63)
"""What Redis replies for a number a C ``long long`` cannot hold (NaN, infinities, 2^63...)."""

SHEBANG_FLAGS = frozenset({"no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"})

_LOG_LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.INFO, 3: logging.WARNING}

# The sandbox, run once per Lua state with the Python callbacks. It returns the functions the
# engine uses: compile(body) and run(fn, keys, argv, limited).
_PRELUDE = r"""
local py, version, version_num = ...
local getinfo, sethook = debug.getinfo, debug.sethook
local SELF = getinfo(1, 'S').source
local type, tostring, error, select = type, tostring, error, select
local raw_rawget, raw_rawset, raw_next = rawget, rawset, next
local raw_setmetatable, xpcall, raw_pcall = setmetatable, xpcall, pcall
local loadstring, setfenv, concat = loadstring, setfenv, table.concat
local take_error = py.take_error

-- Read-only tables: a proxy per library table (writes fail, reads go through).
local READONLY = 'Attempt to modify a readonly table'
local real_of = raw_setmetatable({}, {__mode = 'k'})
local function refuse() error(READONLY, 2) end
local function readonly(t)
  local proxy = {}
  real_of[proxy] = t
  raw_setmetatable(proxy, {__index = t, __newindex = refuse, __metatable = false})
  return proxy
end
local function next_(t, k) return raw_next(real_of[t] or t, k) end

local G = {}
local function copy(names, from)
  local t = {}
  for name in names:gmatch('%S+') do t[name] = from[name] end
  return t
end

G.string = readonly(string)
G.table = readonly(table)
G.coroutine = readonly(coroutine)
local math_ = copy('abs acos asin atan atan2 ceil cos cosh deg exp floor fmod frexp huge ldexp '
  .. 'log log10 max min mod modf pi pow rad sin sinh sqrt tan tanh', math)
-- The functions a script calls that may fail are Python callables, which Lua sees as C
-- functions: a script's `return f(...)` is then no tail call and the error keeps its line.
math_.random, math_.randomseed = py.random, py.randomseed
G.math = readonly(math_)
G.cjson = readonly({encode = py.cjson_encode, decode = py.cjson_decode, null = py.cjson_null,
  _NAME = 'cjson', _VERSION = '2.1.0'})
G.bit = readonly(copy('tobit tohex bnot band bor bxor lshift rshift arshift rol ror bswap', py.bit))

for name in ('assert error ipairs select tonumber tostring type unpack rawequal '
    .. 'getmetatable collectgarbage gcinfo _VERSION'):gmatch('%S+') do
  G[name] = _G[name]
end
G.next = next_
G.pairs = function(t) return next_, t, nil end
G.rawget = function(t, k) return raw_rawget(real_of[t] or t, k) end
G.rawset = function(t, k, v)
  if real_of[t] then error(READONLY, 0) end
  return raw_rawset(t, k, v)
end
G.setmetatable = function(t, mt)
  if real_of[t] then error(READONLY, 0) end
  return raw_setmetatable(t, mt)
end

-- An error raised by a Python callable reaches Lua as a userdata; the error it stands for
-- (a table, or a message to prefix with the script's position) waits on the Python side.
local function short_source(source)
  if source:sub(1, 1) == '@' or source:sub(1, 1) == '=' then return source:sub(2) end
  return '[string "' .. source .. '"]'
end
local function real_error(err, info)
  if type(err) ~= 'userdata' then return err end
  local kind, payload = take_error()
  if kind == 'table' then return payload end
  if kind == 'where' then
    if info then return short_source(info.source) .. ':' .. info.currentline .. ': ' .. payload end
    return payload
  end
  return err
end

-- pcall gives a script the message of an error table (what redis.call raises), as Redis 7.
local function pcall_result(ok, ...)
  if ok then return ok, ... end
  local e = real_error((...), nil)
  if type(e) == 'table' then
    local msg = raw_rawget(e, 'err')
    if type(msg) == 'string' or type(msg) == 'number' then e = msg end
  end
  return false, e
end
G.pcall = function(...) return pcall_result(raw_pcall(...)) end
G.xpcall = function(f, h)
  return xpcall(f, function(e) return h(real_error(e, nil)) end)
end
-- No precompiled chunks: crafted bytecode escapes any Lua sandbox (Redis refuses it too).
local BINARY = '\27'
G.loadstring = function(s, name)
  if type(s) == 'string' and s:sub(1, 1) == BINARY then
    return nil, 'loading of binary chunks is not allowed'
  end
  return loadstring(s, name)
end
G.load = function(reader, name)
  if type(reader) ~= 'function' then return G.loadstring(reader, name) end
  local parts = {}
  while true do
    local piece = reader()
    if piece == nil or piece == '' then break end
    parts[#parts + 1] = piece
  end
  return G.loadstring(concat(parts), name)
end

-- redis.*
local function err_table(msg) return {err = 'ERR ' .. msg} end
local redis = {}
redis.call, redis.pcall, redis.sha1hex, redis.log = py.call, py.pcall, py.sha1hex, py.log
redis.setresp, redis.set_repl, redis.acl_check_cmd = py.setresp, py.set_repl, py.acl_check_cmd
redis.error_reply = function(...)
  local msg = ...
  if select('#', ...) ~= 1 or type(msg) ~= 'string' then
    return err_table('wrong number or type of arguments')
  end
  if msg:sub(1, 1) ~= '-' then msg = '-' .. msg end
  local space = msg:find(' ', 1, true)
  local code, text
  if space then code, text = msg:sub(2, space - 1), msg:sub(space + 1)
  else code, text = 'ERR', msg:sub(2) end
  text = text:gsub('^[\r\n]+', ''):gsub('[\r\n]+$', '')
  return {err = code .. ' ' .. text}
end
redis.status_reply = function(...)
  local msg = ...
  if select('#', ...) ~= 1 or type(msg) ~= 'string' then
    return err_table('wrong number or type of arguments')
  end
  return {ok = msg}
end
redis.replicate_commands = function() return true end
redis.breakpoint = function() return false end
redis.debug = function() end
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_REPLICA, redis.REPL_SLAVE, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.REDIS_VERSION, redis.REDIS_VERSION_NUM = version, version_num
G.redis = readonly(redis)

-- Redis's message handler: an error table, with where the script was when it failed.
local function handler(err)
  local level = 2
  local info = getinfo(level, 'Sl')
  while info and (info.what == 'C' or info.source == SELF) do
    level = level + 1
    info = getinfo(level, 'Sl')
  end
  err = real_error(err, info)
  if type(err) ~= 'table' then err = {err = 'ERR ' .. tostring(err)} end
  if info then
    raw_rawset(err, 'source', info.source)
    raw_rawset(err, 'line', info.currentline)
  end
  return err
end
G.__redis__err__handler = handler

-- The global table: reading a missing name is an error, writing one too.
raw_setmetatable(G, {__index = function(_, name)
  local info = getinfo(2, 'S')
  if info and info.what ~= 'C' then
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
  end
  return nil
end})
local ENV = readonly(G)
G._G = ENV
-- The string metatable's __index is the (read-only) string library, and it is hidden.
local string_mt = getmetatable('')
string_mt.__index = G.string
string_mt.__metatable = readonly({__index = G.string})
-- Chunks compiled later (loadstring in a script) get the sandbox as their globals.
setfenv(0, ENV)

local function stopped()
  -- Not in our own code (the message handler, run's epilogue): only in the script's.
  local info = getinfo(2, 'S')
  if info and info.source == SELF then return end
  error({err = 'ERR Script killed: it ran longer than lua-time-limit'})
end
local expired = py.expired
local function hook()
  if expired() then
    -- From now on every line of the script fails (the next one included), so that a
    -- pcall loop cannot outlive the limit.
    sethook(stopped, 'l', 1)
  end
end

local function compile(body)
  if body:sub(1, 1) == BINARY then return false, 'loading of binary chunks is not allowed' end
  local fn, err = loadstring(body, '@user_script')
  if not fn then return false, err end
  setfenv(fn, ENV)
  return true, fn
end

local function run(fn, keys, argv, limited)
  G.KEYS, G.ARGV = keys, argv
  if limited then sethook(hook, '', 100000) end
  local ok, result = xpcall(fn, handler)
  if limited then sethook() end
  G.KEYS, G.ARGV = nil, nil
  return ok, result
end

return compile, run, function() collectgarbage() end
"""


@dataclass(slots=True)
class Script:
    """A script of the cache: its body, its compiled function and its shebang flags."""

    sha: str
    body: bytes
    function: Any
    flags: frozenset[str] | None
    """The shebang's flags; None for a script without a shebang (Redis's compat mode)."""

    @property
    def read_only(self) -> bool:
        """Whether the script declared ``no-writes``."""
        return self.flags is not None and "no-writes" in self.flags


def parse_shebang(body: bytes) -> tuple[frozenset[str] | None, int]:
    """The flags of ``body``'s ``#!lua`` line (None without one) and the line's length; an
    ErrorReply with Redis's text for a bad shebang."""
    if not body.startswith(b"#!"):
        return None, 0
    end = body.find(b"\n")
    if end < 0:
        raise ErrorReply("ERR Invalid script shebang")
    parts = split_inline(body[:end])
    if not parts:
        raise ErrorReply("ERR Invalid engine in script shebang")
    if parts[0] != b"#!lua":
        raise ErrorReply(f"ERR Unexpected engine in script shebang: {_text(parts[0])}")
    flags: set[str] = set()
    for part in parts[1:]:
        if not part.startswith(b"flags="):
            raise ErrorReply(f"ERR Unknown lua shebang option: {_text(part)}")
        value = part[6:]
        for flag in value.split(b",") if value else ():
            name = _text(flag)
            if name not in SHEBANG_FLAGS:
                raise ErrorReply(f"ERR Unexpected flag in script shebang: {name}")
            flags.add(name)
    return frozenset(flags), end


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


class _Rand48:
    """Redis's ``redisLrand48``/``redisSrand48`` (the PRNG behind its ``math.random``)."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = 0x1234ABCD330E

    def seed(self, value: int) -> None:
        value &= 0xFFFFFFFF
        self.state = ((value >> 16) << 32) | ((value & 0xFFFF) << 16) | 0x330E

    def random(self) -> float:
        self.state = (0x5DEECE66D * self.state + 0xB) & 0xFFFFFFFFFFFF
        top = 2**31 - 1
        return ((self.state >> 17) % top) / top


def _version_num(version: str) -> int:
    major, minor, patch = (int(part) for part in version.split(".")[:3])
    return (major << 16) | (minor << 8) | patch


class LuaEngine:
    """A server's Lua state and script cache (see the module docstring)."""

    def __init__(self, server: Server) -> None:
        import lupa.lua51 as lupa  # type: ignore[import-untyped]

        from .app import VERSION

        self.server = server
        self._lua_type: Callable[[Any], str | None] = lupa.lua_type
        self.runtime = lupa.LuaRuntime(
            encoding=None,
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
            attribute_filter=_no_attributes,
            max_memory=MAX_MEMORY,
        )
        self._table_from = self.runtime.table_from
        self.scripts: dict[str, Script] = {}
        self._client: Client | None = None
        self._read_only = False
        self._deadline = math.inf
        self._rand = _Rand48()
        self._resp3 = False
        # The error a Python callable raised into Lua, until the Lua side takes it.
        self._pending: tuple[str, Any] | None = None
        globals_ = self.runtime.globals()
        globals_.python = None  # lupa's bridge to Python: never visible to scripts
        libraries = _Libraries(self)
        callbacks = self._table_from(
            {
                b"call": self._guard(lambda *args: self._redis_call(True, args)),
                b"pcall": self._guard(lambda *args: self._redis_call(False, args)),
                b"acl_check_cmd": self._guard(lambda *args: self._redis_call(None, args)),
                b"sha1hex": self._guard(self._sha1hex),
                b"log": self._guard(self._log),
                b"setresp": self._guard(self._setresp),
                b"set_repl": self._guard(self._set_repl),
                b"random": self._guard(self._random),
                b"randomseed": self._guard(self._randomseed),
                b"expired": self._expired,
                b"cjson_encode": self._guard(libraries.encode),
                b"cjson_decode": self._guard(libraries.decode),
                b"cjson_null": JSON_NULL,
                b"bit": self._table_from(
                    {name.encode(): self._guard(libraries.function(name)) for name in _BIT_FUNCTIONS}
                ),
                b"take_error": self._take_error,
            }
        )
        self._compile, self._run, self._collect = self.runtime.execute(
            _PRELUDE, callbacks, VERSION.encode(), _version_num(VERSION)
        )

    # ----------------------------------------------------------- the cache

    def load(self, body: bytes) -> Script:
        """The cached script of ``body``, compiling it on first sight (Redis's texts for
        shebang and compile errors)."""
        sha = hashlib.sha1(body).hexdigest()
        script = self.scripts.get(sha)
        if script is not None:
            return script
        flags, shebang = parse_shebang(body)
        # Lua must not see the shebang; its newline stays, so line numbers are the body's.
        source = body[shebang:] if shebang else body
        try:
            ok, function = self._compile(source)
        except Exception as exc:  # lupa: out of memory while compiling
            raise ErrorReply(f"ERR Error compiling script (new function): {exc}") from None
        if not ok:
            raise ErrorReply(f"ERR Error compiling script (new function): {_one_line(function)}")
        script = Script(sha, body, function, flags)
        self.scripts[sha] = script
        return script

    # --------------------------------------------------------------- runs

    def run(
        self, client: Client, script: Script, keys: list[bytes], argv: list[bytes], read_only: bool
    ) -> Any:
        """Run ``script`` for ``client`` and return its reply object."""
        table_from = self._table_from
        limit = self.server.config.lua_time_limit
        self._client = client
        self._read_only = read_only or script.read_only
        self._resp3 = False
        self._pending = None
        self._deadline = time.monotonic() + limit / 1000 if limit else math.inf
        db = client.db
        extra = client.extra
        extra["in_script"] = True
        try:
            ok, result = self._run(script.function, table_from(keys), table_from(argv), bool(limit))
        except Exception as exc:  # lupa: the Lua state ran out of memory
            return ErrorReply(f"ERR Error running script {script.sha}: {type(exc).__name__} {_one_line(exc)}")
        finally:
            self._client = None
            extra["in_script"] = False
            # SELECT in a script changes the script's database only (Redis 7).
            client.db = db
        resp3 = client.resp3
        if not ok:
            if self._lua_type(result) != "table":
                # Out of memory (the handler does not run then): give the garbage back now.
                self._collect()
            return self._script_error(script, result)
        return self._to_reply(result, resp3)

    def _script_error(self, script: Script, error: Any) -> ErrorReply:
        if self._lua_type(error) != "table":
            return ErrorReply(f"ERR Error running script {script.sha}, {_one_line(error)[:100]}")
        message = error[b"err"]
        if isinstance(message, int | float):
            message = _number_arg(message)
        text = _one_line(message) if isinstance(message, bytes) else "ERR unknown error"
        source, line = error[b"source"], error[b"line"]
        if source is not None and line is not None:
            text += f" script: {script.sha}, on {_one_line(source)}:{line}."
        return ErrorReply(text)

    # ------------------------------------------- callables the scripts see

    def _guard(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func`` as a script's callable: an error it raises (:class:`_Raise`) becomes the
        Lua error it stands for; any other exception is a bug of ours, counted and logged,
        and the script gets an error (never a Python exception)."""

        def guarded(*args: Any) -> Any:
            try:
                return func(*args)
            except _Raise:
                raise
            except Exception:
                self.server.internal_errors += 1
                logger.exception("internal error in a scripting callback")
                self._pending = ("table", self._error_table("ERR internal error in a scripting callback"))
                raise _Raise() from None

        return guarded

    def _raise_table(self, message: str) -> _Raise:
        self._pending = ("table", self._error_table(message))
        return _Raise()

    def _raise_where(self, message: str) -> _Raise:
        """An error Lua's position of the calling script line is prefixed to (luaL_error)."""
        self._pending = ("where", message.encode())
        return _Raise()

    def _take_error(self) -> tuple[Any, Any]:
        pending, self._pending = self._pending, None
        if pending is None:
            return None, None
        return pending[0].encode(), pending[1]

    def _expired(self) -> bool:
        return time.monotonic() > self._deadline

    def _log(self, *args: Any) -> None:
        if len(args) < 2:
            raise self._raise_table("ERR redis.log() requires two arguments or more.")
        level = args[0]
        if type(level) not in (int, float):
            raise self._raise_table("ERR First argument must be a number.")
        if not 0 <= int(level) <= 3:
            raise self._raise_table("ERR Invalid debug level.")
        parts = [_lua_string(arg) for arg in args[1:]]
        message = b" ".join(part for part in parts if part is not None)
        logger.log(_LOG_LEVELS[int(level)], "script: %s", message.decode("utf-8", "replace"))

    def _sha1hex(self, *args: Any) -> bytes:
        if len(args) != 1:
            raise self._raise_table("ERR wrong number of arguments")
        data = _lua_string(args[0]) or b""
        return hashlib.sha1(data).hexdigest().encode()

    def _setresp(self, *args: Any) -> None:
        if len(args) != 1:
            raise self._raise_table("ERR redis.setresp() requires one argument.")
        version = _lua_number(args[0])
        if version not in (2, 3):
            raise self._raise_table("ERR RESP version must be 2 or 3.")
        self._resp3 = version == 3

    def _set_repl(self, *args: Any) -> None:
        if len(args) != 1:
            raise self._raise_table("ERR redis.set_repl() requires one argument.")
        flags = _lua_number(args[0])
        if flags is None or not 0 <= flags <= 3:
            raise self._raise_table(
                "ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE."
            )

    def _checkint(self, value: Any, index: int) -> int:
        number = _lua_number(value)
        if number is None:
            got = "nil" if value is None else (self._lua_type(value) or "string")
            if isinstance(value, bytes):
                got = "string"
            raise self._raise_where(f"bad argument #{index} to 'random' (number expected, got {got})")
        return int(number)

    def _random(self, *args: Any) -> float | int:
        r = self._rand.random()  # drawn first, as Redis does, even when the arguments are bad
        if not args:
            return r
        if len(args) == 1:
            upper = self._checkint(args[0], 1)
            if upper < 1:
                raise self._raise_where("bad argument #1 to 'random' (interval is empty)")
            return math.floor(r * upper) + 1
        if len(args) == 2:
            lower, upper = self._checkint(args[0], 1), self._checkint(args[1], 2)
            if lower > upper:
                raise self._raise_where("bad argument #2 to 'random' (interval is empty)")
            return math.floor(r * (upper - lower + 1)) + lower
        raise self._raise_where("wrong number of arguments")

    def _randomseed(self, *args: Any) -> None:
        self._rand.seed(self._checkint(args[0] if args else None, 1))

    def _redis_call(self, raise_error: bool | None, args: tuple[Any, ...]) -> Any:
        """redis.call (raise_error True), redis.pcall (False), redis.acl_check_cmd (None)."""
        ok, value = self._call(raise_error, self._resp3, args)
        if ok or raise_error is False:
            return value
        self._pending = ("table", value)
        raise _Raise()

    def _error_table(self, message: str) -> Any:
        return self._table_from({b"err": message.encode("utf-8", "replace")})

    def _call(self, raise_error: bool | None, resp3: bool, args: tuple[Any, ...]) -> tuple[bool, Any]:
        if not args:
            return False, self._error_table(
                "ERR Please specify at least one argument for this redis lib call"
            )
        argv: list[bytes] = []
        for arg in args:
            kind = type(arg)
            if kind is bytes:
                argv.append(arg)
            elif kind is int or kind is float:
                argv.append(_number_arg(arg))
            else:
                return False, self._error_table(
                    "ERR Lua redis lib command arguments must be strings or integers"
                )
        cmd = COMMANDS.get(argv[0].lower())
        if raise_error is None:  # acl_check_cmd
            if cmd is None:
                return False, self._error_table("ERR Invalid command passed to redis.acl_check_cmd()")
            client = self._client
            allowed = client is not None and self.server.check_command(client, cmd, argv) is None
            return True, allowed
        arity = 0 if cmd is None else cmd.arity
        if cmd is not None and cmd.name == "script" and len(argv) > 1:
            from .commands.scripting import SCRIPT_ARITY

            arity = SCRIPT_ARITY.get(argv[1].lower(), arity)
        if cmd is None or (arity > 0 and len(argv) != arity) or len(argv) < -arity:
            text = (
                "Unknown Redis command called from script"
                if cmd is None
                else ("Wrong number of args calling Redis command from script")
            )
            return False, self._error_table(f"ERR {text}")
        if "noscript" in cmd.flags or (
            # SCRIPT's subcommands but HELP are noscript in Redis (a script could flush itself).
            cmd.name == "script" and len(argv) > 1 and argv[1].lower() != b"help"
        ):
            return False, self._error_table("ERR This Redis command is not allowed from script")
        if cmd.write and self._read_only:
            return False, self._error_table("ERR Write commands are not allowed from read-only scripts.")
        client = self._client
        assert client is not None
        reply = answer_now(client.call(cmd, argv))
        if isinstance(reply, ErrorReply):
            return False, self._error_table(_lua_error_text(reply.message))
        return True, self._to_lua(reply, resp3)

    # ------------------------------------------------------- conversions

    def _to_lua(self, reply: Any, resp3: bool) -> Any:
        """A command's reply object as the Lua value Redis gives a script (RESP2 rules, or
        RESP3's with ``resp3``)."""
        kind = type(reply)
        if kind is bytes:
            return reply
        if kind is int:
            return reply
        if kind is str:
            return self._table_from({b"ok": reply.encode("utf-8", "replace")})
        if reply is None or kind is NullArray:
            return None if resp3 else False
        if kind is list or kind is tuple or kind is Push:
            return self._table_from([self._to_lua(item, resp3) for item in reply])
        if isinstance(reply, ErrorReply):
            return self._error_table(_lua_error_text(reply.message))
        if kind is float:
            if resp3:
                return self._table_from({b"double": reply})
            return format_double(reply)
        if kind is dict:
            if resp3:
                inner = self._table_from({})
                for key, value in reply.items():
                    inner[self._to_lua(key, resp3)] = self._to_lua(value, resp3)
                return self._table_from({b"map": inner})
            flat: list[Any] = []
            for key, value in reply.items():
                flat.append(self._to_lua(key, resp3))
                flat.append(self._to_lua(value, resp3))
            return self._table_from(flat)
        if kind is set or kind is frozenset:
            if resp3:
                inner = self._table_from({})
                for item in reply:
                    inner[self._to_lua(item, resp3)] = True
                return self._table_from({b"set": inner})
            return self._table_from([self._to_lua(item, resp3) for item in reply])
        if kind is Boolean:
            if resp3:
                return bool(reply.value)
            return 1 if reply.value else 0
        if kind is bool:
            return 1 if reply else 0
        if kind is Verbatim:
            if resp3:
                verbatim = self._table_from({b"string": bytes(reply), b"format": b"txt"})
                return self._table_from({b"verbatim_string": verbatim})
            return bytes(reply)
        if kind is bytearray or kind is memoryview:
            return bytes(reply)
        return None if resp3 else False

    def _to_reply(self, value: Any, resp3: bool, depth: int = 0) -> Any:
        """A script's Lua value as a reply object (Redis's ``luaReplyToRedisReply``)."""
        kind = type(value)
        if kind is bytes:
            return value
        if kind is int or kind is float:
            return _to_integer(value)
        if kind is bool:
            # Booleans follow the script's protocol (redis.setresp), not the caller's: by
            # default true is the integer 1 and false is null, even for a RESP3 client.
            if self._resp3:
                return Boolean(value)
            return 1 if value else None
        if value is None:
            return None
        if self._lua_type(value) != "table":
            return None  # functions, coroutines, userdata: Redis's null
        if depth > MAX_NESTING:
            return ErrorReply("ERR reached lua stack limit")
        depth += 1
        err = value[b"err"]
        if type(err) is bytes:
            return ErrorReply(_one_line(err))
        ok = value[b"ok"]
        if type(ok) is bytes:
            return _one_line(ok)
        double = value[b"double"]
        if type(double) in (int, float):
            return float(double)
        big = value[b"big_number"]
        if type(big) is bytes:
            return big.replace(b"\r", b" ").replace(b"\n", b" ")
        verbatim = value[b"verbatim_string"]
        if self._lua_type(verbatim) == "table":
            text = verbatim[b"string"]
            if type(text) is bytes:
                return Verbatim(text)
        mapping = value[b"map"]
        if self._lua_type(mapping) == "table":
            result: dict[Any, Any] = {}
            for key, item in mapping.items():
                result[_hashable(self._to_reply(key, resp3, depth))] = self._to_reply(item, resp3, depth)
            return result
        members = value[b"set"]
        if self._lua_type(members) == "table":
            items = [_hashable(self._to_reply(key, resp3, depth)) for key in members]
            try:
                return set(items)
            except TypeError:
                return items
        array: list[Any] = []
        index = 1
        while True:
            item = value[index]
            if item is None:
                return array
            array.append(self._to_reply(item, resp3, depth))
            index += 1


class _Raise(Exception):
    """Raised by a script's Python callable: the Lua error it stands for is pending."""


def _lua_string(value: Any) -> bytes | None:
    """Lua's ``lua_tolstring``: strings, and numbers as Lua writes them (``%.14g``)."""
    if type(value) is bytes:
        return value
    if type(value) in (int, float):
        number = float(value)
        if number.is_integer() and abs(number) < 1e15:
            return b"%d" % int(number)
        return b"%.14g" % number
    return None


def _lua_number(value: Any) -> float | None:
    """Lua's ``tonumber`` for an argument: numbers, and strings that hold one."""
    if type(value) in (int, float):
        return float(value)
    if type(value) is bytes:
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _no_attributes(obj: Any, name: Any, setting: bool) -> Any:
    """lupa's attribute filter: a script may call the callbacks, never reach into Python."""
    raise AttributeError("not accessible from Lua")


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _one_line(value: Any) -> str:
    """Error/status text on one line, as Redis maps CR and LF to spaces."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text.replace("\r", " ").replace("\n", " ")


def _lua_error_text(message: str) -> str:
    """Redis's ``luaPushErrorBuff``: a reply's error as the ``err`` of a Lua error table (a
    message without a code gets ``ERR``; CR/LF trimmed at the end)."""
    code, sep, rest = message.partition(" ")
    if not sep:
        return f"ERR {code}".rstrip("\r\n")
    return f"{code} {rest.strip(chr(13) + chr(10))}"


def _number_arg(number: float) -> bytes:
    """A Lua number as a command argument: C's ``%.17g``, as Redis writes it."""
    value = float(number)
    if math.isnan(value):
        return b"-nan" if math.copysign(1.0, value) < 0 else b"nan"
    return b"%.17g" % value


def _to_integer(number: float) -> int:
    """A Lua number as Redis's integer reply: truncated toward zero; what a long long cannot
    hold (NaN, infinities, beyond 2^63) is INT64_MIN, as x86's conversion gives Redis."""
    if isinstance(number, float):
        if math.isnan(number) or math.isinf(number):
            return INT64_MIN
        number = int(number)
    if not INT64_MIN <= number < 2**63:
        return INT64_MIN
    return number


def engine_for(server: Server) -> LuaEngine:
    """The server's Lua engine (created on first use; SCRIPT FLUSH drops it)."""
    engine: LuaEngine | None = server.extra.get("lua")
    if engine is None:
        if importlib.util.find_spec("lupa") is None:
            raise ErrorReply("ERR scripting needs the lupa package: pip install 'stratacache[server]'")
        engine = LuaEngine(server)
        server.extra["lua"] = engine
        server.extra["scripts"] = engine.scripts
    return engine


# --------------------------------------------------------------- cjson and bit

_JSON_ESCAPES = {
    0x22: b'\\"',
    0x5C: b"\\\\",
    0x2F: b"\\/",
    0x08: b"\\b",
    0x0C: b"\\f",
    0x0A: b"\\n",
    0x0D: b"\\r",
    0x09: b"\\t",
}
_JSON_TABLE = [
    _JSON_ESCAPES.get(byte, b"\\u%04x" % byte if byte < 0x20 or byte == 0x7F else bytes([byte]))
    for byte in range(256)
]


class _JsonNull:
    """cjson.null (a userdata to scripts, as Redis's lightuserdata NULL)."""

    __slots__ = ()

    def __str__(self) -> str:
        return "userdata: (nil)"


JSON_NULL = _JsonNull()


def _lua_number_text(number: float) -> bytes:
    """A number as Lua and cjson write it (``%.14g``)."""
    return b"%.14g" % float(number)


class _Libraries:
    """The cjson and bit libraries Redis loads, as Python callables of an engine."""

    def __init__(self, engine: LuaEngine) -> None:
        self.engine = engine

    # cjson ----------------------------------------------------------------------

    def encode(self, *args: Any) -> bytes:
        if len(args) != 1:
            raise self.engine._raise_where("bad argument #1 to 'encode' (expected 1 argument)")
        out: list[bytes] = []
        self._encode(args[0], out, 0)
        return b"".join(out)

    def _encode(self, value: Any, out: list[bytes], depth: int) -> None:
        engine = self.engine
        kind = type(value)
        if value is None or value is JSON_NULL:
            out.append(b"null")
        elif kind is bool:
            out.append(b"true" if value else b"false")
        elif kind is int or kind is float:
            if math.isnan(value) or math.isinf(value):
                raise engine._raise_where("Cannot serialise number: must not be NaN or Inf")
            out.append(_lua_number_text(value))
        elif kind is bytes:
            out.append(b'"' + b"".join(_JSON_TABLE[byte] for byte in value) + b'"')
        elif engine._lua_type(value) == "table":
            if depth >= 1000:
                raise engine._raise_where(f"Cannot serialise, excessive nesting ({depth + 1})")
            items = list(value.items())
            length = self._array_length(items)
            if length > 0:
                by_index = {int(key): item for key, item in items}
                out.append(b"[")
                for index in range(1, length + 1):
                    if index > 1:
                        out.append(b",")
                    self._encode(by_index.get(index), out, depth + 1)
                out.append(b"]")
                return
            out.append(b"{")
            for position, (key, item) in enumerate(items):
                if position:
                    out.append(b",")
                if type(key) is bytes:
                    self._encode(key, out, depth + 1)
                elif type(key) in (int, float):
                    out.append(b'"' + _lua_number_text(key) + b'"')
                else:
                    name = engine._lua_type(key) or ("boolean" if type(key) is bool else "userdata")
                    raise engine._raise_where(
                        f"Cannot serialise {name}: table key must be a number or string"
                    )
                out.append(b":")
                self._encode(item, out, depth + 1)
            out.append(b"}")
        else:
            name = engine._lua_type(value) or "userdata"
            raise engine._raise_where(f"Cannot serialise {name}: type not supported")

    def _array_length(self, items: list[tuple[Any, Any]]) -> int:
        """cjson's ``lua_array_length``: the array's length, or -1/0 for an object."""
        largest = 0
        for key, _ in items:
            if type(key) not in (int, float) or key < 1 or float(key) != math.floor(key):
                return -1
            largest = max(largest, int(key))
        if largest > 2 * len(items) and largest > 10:
            raise self.engine._raise_where("Cannot serialise table: excessively sparse array")
        return largest

    def decode(self, *args: Any) -> Any:
        engine = self.engine
        if len(args) != 1:
            raise engine._raise_where("bad argument #1 to 'decode' (expected 1 argument)")
        text = _lua_string(args[0])
        if text is None:
            got = engine._lua_type(args[0]) or ("nil" if args[0] is None else "boolean")
            raise engine._raise_where(f"bad argument #1 to 'decode' (string expected, got {got})")
        try:
            data = json.loads(
                text.decode("utf-8", "surrogateescape"),
                parse_constant=_reject_constant,
                object_pairs_hook=lambda pairs: pairs,
            )
        except json.JSONDecodeError as exc:
            found = "T_END" if exc.pos >= len(text) else "invalid token"
            raise engine._raise_where(
                f"Expected value but found {found} at character {exc.pos + 1}"
            ) from None
        except ValueError:
            raise engine._raise_where("Expected value but found invalid token at character 1") from None
        return self._to_lua(data)

    def _to_lua(self, data: Any) -> Any:
        kind = type(data)
        if kind is str:
            return data.encode("utf-8", "surrogateescape")
        if data is None:
            return JSON_NULL
        if kind is bool:
            return data
        if kind is int or kind is float:
            return float(data)
        table_from = self.engine._table_from
        if kind is list and data and type(data[0]) is tuple:  # an object's pairs
            return table_from({self._to_lua(key): self._to_lua(value) for key, value in data})
        if kind is list:
            return table_from([self._to_lua(item) for item in data])
        return table_from({})  # an empty object (object_pairs_hook gave [])

    # bit --------------------------------------------------------------------------

    def _bits(self, name: str, args: tuple[Any, ...], index: int) -> int:
        value = args[index - 1] if len(args) >= index else None
        number = _lua_number(value)
        if number is None or math.isnan(number) or math.isinf(number):
            got = (
                "no value"
                if len(args) < index
                else ("string" if type(value) is bytes else (self.engine._lua_type(value) or "nil"))
            )
            if number is not None:
                return 0
            raise self.engine._raise_where(f"bad argument #{index} to '{name}' (number expected, got {got})")
        return round(number) & 0xFFFFFFFF

    def function(self, name: str) -> Callable[..., int | bytes]:
        """``bit.<name>`` (LuaBitOp's semantics: 32-bit, results as signed numbers)."""

        def signed(bits: int) -> int:
            bits &= 0xFFFFFFFF
            return bits - (1 << 32) if bits & 0x80000000 else bits

        def run(*args: Any) -> int | bytes:
            first = self._bits(name, args, 1)
            if name in ("band", "bor", "bxor"):
                for index in range(2, len(args) + 1):
                    other = self._bits(name, args, index)
                    first = (
                        first & other if name == "band" else first | other if name == "bor" else first ^ other
                    )
                return signed(first)
            if name == "tobit":
                return signed(first)
            if name == "bnot":
                return signed(~first)
            if name == "bswap":
                return signed(int.from_bytes(first.to_bytes(4, "little"), "big"))
            if name == "tohex":
                digits = 8 if len(args) < 2 else signed(self._bits(name, args, 2))
                upper = digits < 0
                digits = min(abs(digits), 8)
                text = (b"%08X" if upper else b"%08x") % first
                return text[8 - digits :]
            shift = self._bits(name, args, 2) & 31
            if name == "lshift":
                return signed(first << shift)
            if name == "rshift":
                return signed(first >> shift)
            if name == "arshift":
                return signed(signed(first) >> shift)
            if name == "rol":
                return signed((first << shift) | (first >> (32 - shift)))
            return signed((first >> shift) | (first << (32 - shift)))  # ror

        return run


_BIT_FUNCTIONS = (
    "tobit",
    "tohex",
    "bnot",
    "band",
    "bor",
    "bxor",
    "lshift",
    "rshift",
    "arshift",
    "rol",
    "ror",
    "bswap",
)


def _reject_constant(name: str) -> Any:
    raise ValueError(name)
