"""Scripting (EVAL EVALSHA EVAL_RO EVALSHA_RO SCRIPT) against a real redis-server.

Most cases are one command whose reply must equal Redis 7.0's byte for byte: conversions
both ways, the sandbox, the error texts (with their ``script: <sha>, on @user_script:N.``
suffix), redis.* helpers, math.random's generator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from respclient import Err, Pair, RespConn

from stratacache._async.backends.redis import _PERSIST
from stratacache.server import ServerThread

CASES = [
    ("SCRIPT",),
    ("SCRIPT", "LOAD"),
    ("SCRIPT", "LOAD", "a", "b"),
    ("SCRIPT", "EXISTS"),
    ("SCRIPT", "FLUSH", "x"),
    ("SCRIPT", "FLUSH", "ASYNC"),
    ("SCRIPT", "FLUSH", "a", "b"),
    ("SCRIPT", "KILL"),
    ("SCRIPT", "KILL", "x"),
    ("SCRIPT", "nosuch"),
    ("SCRIPT", "HELP"),
    ("SCRIPT", "LOAD", "return 1"),
    (
        "SCRIPT",
        "EXISTS",
        "e0e1f9fabfc9d4800c877a703b823ac0578ff8db",
        "E0E1F9FABFC9D4800C877A703B823AC0578FF8DB",
        "nope",
    ),
    ("EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"),
    ("SCRIPT", "LOAD", "return ("),
    ("EVAL", "return 1"),
    ("EVAL", "return 1", "x"),
    ("EVAL", "return 1", "-1"),
    ("EVAL", "return 1", "2", "a"),
    ("EVALSHA", "abc", "0"),
    ("EVALSHA", "abc", "-1"),
    ("EVALSHA", "0123456789012345678901234567890123456789", "-1"),
    ("EVALSHA", "0123456789012345678901234567890123456789", "0"),
    ("EVAL", "return x", "0"),
    ("EVAL", "x = 5", "0"),
    ("EVAL", "redis.x = 1", "0"),
    ("EVAL", "math.foo = 1", "0"),
    ("EVAL", "return type(debug)", "0"),
    ("EVAL", "return type(os)", "0"),
    ("EVAL", "os.exit()", "0"),
    ("EVAL", "return type(io)", "0"),
    ("EVAL", "return type(print)", "0"),
    ("EVAL", "return type(require)", "0"),
    ("EVAL", "return type(loadfile)", "0"),
    ("EVAL", "return type(dofile)", "0"),
    ("EVAL", "return type(python)", "0"),
    ("EVAL", "return type(getfenv)", "0"),
    ("EVAL", "local t = {} for k,v in pairs(math) do t[#t+1] = k end table.sort(t) return t", "0"),
    ("EVAL", "local t = {} for k,v in pairs(string) do t[#t+1] = k end table.sort(t) return t", "0"),
    ("EVAL", "local t = {} for k,v in pairs(table) do t[#t+1] = k end table.sort(t) return t", "0"),
    (
        "EVAL",
        "math.randomseed(42); "
        "return {tostring(math.random()), math.random(100), math.random(5,10), math.random(-3, 3)}",
        "0",
    ),
    ("EVAL", "return math.random(1,2,3)", "0"),
    ("EVAL", "return math.random(0)", "0"),
    ("EVAL", "return math.random(3,1)", "0"),
    ("EVAL", "KEYS[1] = 'x'; ARGV[5] = 1; return {KEYS[1], ARGV[5]}", "1", "a"),
    ("EVAL", "return {KEYS, ARGV}", "2", "a", "b", "c", "d"),
    ("EVAL", "return {#KEYS, #ARGV}", "0"),
    ("EVAL", "return 3.99", "0"),
    ("EVAL", "return -3.99", "0"),
    ("EVAL", "return 0/0", "0"),
    ("EVAL", "return 1/0", "0"),
    ("EVAL", "return 2^63", "0"),
    ("EVAL", "return 2^53+1", "0"),
    ("EVAL", "return {1,2,nil,4}", "0"),
    ("EVAL", "return {1,{2,{3,'x'}},true,false}", "0"),
    ("EVAL", "return true", "0"),
    ("EVAL", "return false", "0"),
    ("EVAL", "return nil", "0"),
    ("EVAL", "return", "0"),
    ("EVAL", "return {}", "0"),
    ("EVAL", "return {ok='a\\r\\nb'}", "0"),
    ("EVAL", "return {err='a\\r\\nb'}", "0"),
    ("EVAL", "return {err=''}", "0"),
    ("EVAL", "return {err=5}", "0"),
    ("EVAL", "return {double=3.5}", "0"),
    ("EVAL", "return {map={a=1}}", "0"),
    ("EVAL", "return {set={a=1}}", "0"),
    ("EVAL", "return {big_number='123'}", "0"),
    ("EVAL", "return {verbatim_string={format='txt', string='hi'}}", "0"),
    ("EVAL", "return {err='x', ok='y'}", "0"),
    ("EVAL", "return {ok='y', 1, 2}", "0"),
    ("EVAL", "return {1, 2, err='x'}", "0"),
    ("EVAL", "return {{ok='y'}, {err='z'}}", "0"),
    ("EVAL", "return {foo='bar'}", "0"),
    ("EVAL", "return redis.status_reply('a\\r\\nb')", "0"),
    ("EVAL", "return redis.status_reply(5)", "0"),
    ("EVAL", "return redis.status_reply()", "0"),
    ("EVAL", "return redis.error_reply('My Error')", "0"),
    ("EVAL", "return redis.error_reply('-My Error')", "0"),
    ("EVAL", "return redis.error_reply('-MYERR')", "0"),
    ("EVAL", "return redis.error_reply('a\\r\\n')", "0"),
    ("EVAL", "return redis.error_reply(5)", "0"),
    ("EVAL", "error({err='CUSTOM thing'})", "0"),
    ("EVAL", "error(nil)", "0"),
    ("EVAL", "error(5)", "0"),
    ("EVAL", "error('x', 0)", "0"),
    ("EVAL", "error('boom')", "0"),
    ("EVAL", "error(redis.error_reply('MY boom'))", "0"),
    ("EVAL", "return redis.call()", "0"),
    ("EVAL", "return redis.pcall()", "0"),
    ("EVAL", "return redis.call('set', 'k', {})", "0"),
    ("EVAL", "return redis.pcall('set', 'k', {})", "0"),
    ("EVAL", "return redis.call('set', 'k', 0.1)", "0"),
    ("EVAL", "return redis.call('get', 'k')", "0"),
    ("EVAL", "return redis.call('set', 'k', 1e20)", "0"),
    ("EVAL", "return redis.call('get', 'k')", "0"),
    ("EVAL", "return redis.call('set', 'k', 0/0)", "0"),
    ("EVAL", "return redis.call('get', 'k')", "0"),
    ("EVAL", "return redis.call('set', 'k', 1/0)", "0"),
    ("EVAL", "return redis.call('get', 'k')", "0"),
    ("EVAL", "return redis.call('set', 'k', true)", "0"),
    ("EVAL", "return redis.call('set', 'k', nil)", "0"),
    ("EVAL", "return redis.call('SET', 'k', 'v', 'EX', 'notnum')", "0"),
    ("EVAL", "return redis.pcall('SET', 'k', 'v', 'EX', 'notnum')", "0"),
    ("EVAL", "return redis.pcall('GET')", "0"),
    ("EVAL", "return redis.call('GET')", "0"),
    ("EVAL", "return redis.call('nosuch')", "0"),
    ("EVAL", "return redis.call('get', 'nokey')", "0"),
    ("EVAL", "return type(redis.call('get', 'nokey'))", "0"),
    ("EVAL", "local r = redis.call('set', 'k', 'v'); return type(r) .. r['ok']", "0"),
    ("EVAL", "local r = redis.pcall('nosuch'); return type(r) .. r['err']", "0"),
    ("EVAL", "return redis.call('multi')", "0"),
    ("EVAL", "return redis.call('eval', 'return 1', 0)", "0"),
    ("EVAL", "return redis.call('ping')", "0"),
    ("EVAL", "return redis.sha1hex('')", "0"),
    ("EVAL", "return redis.sha1hex()", "0"),
    ("EVAL", "return redis.sha1hex(5)", "0"),
    ("EVAL", "return redis.log(redis.LOG_WARNING, 'hello', 'x')", "0"),
    ("EVAL", "return redis.log(99, 'hello')", "0"),
    ("EVAL", "return redis.log()", "0"),
    ("EVAL", "return redis.setresp(3)", "0"),
    ("EVAL", "return redis.setresp(4)", "0"),
    ("EVAL", "return redis.setresp()", "0"),
    ("EVAL", "return redis.replicate_commands()", "0"),
    ("EVAL", "return redis.set_repl(redis.REPL_ALL)", "0"),
    ("EVAL", "return pcall(function() return redis.call('nosuch') end)", "0"),
    ("EVAL", "local ok, e = pcall(function() return redis.call('nosuch') end); return e", "0"),
    ("EVAL", "local ok, e = pcall(redis.call, 'nosuch'); return {type(e), tostring(e)}", "0"),
    ("EVAL", "local ok, e = pcall(function() error({err='X y'}) end); return e", "0"),
    (
        "EVAL",
        "local ok, e = xpcall(function() return redis.call('nosuch') end, function(m) return m end); "
        "return type(e)",
        "0",
    ),
    ("EVAL", "local ok, e = pcall(function() error('x') end); return e", "0"),
    ("EVAL", "local ok, e = pcall(function() local t = nil; return t.x end); return e", "0"),
    ("EVAL", "local t = nil; return t.x", "0"),
    ("EVAL", "return ('x'):rep(3)", "0"),
    ("EVAL", "return tostring(0.1)", "0"),
    ("EVAL", "return {1.5, 2.5}", "0"),
    ("EVAL", "return math.huge", "0"),
    ("EVAL", "return unpack({1,2})", "0"),
    ("EVAL", "return loadstring('return 1')()", "0"),
    ("EVAL", "return loadstring('return os')()", "0"),
    ("EVAL", "return getmetatable(_G) ~= nil", "0"),
    ("EVAL", "setmetatable(_G, nil)", "0"),
    ("EVAL", "return rawget(_G, 'x')", "0"),
    ("EVAL", "rawset(_G, 'x', 1)", "0"),
    ("EVAL", "rawset(math, 'x', 1)", "0"),
    ("EVAL", "return rawget(math, 'floor') ~= nil", "0"),
    ("EVAL", "return coroutine.wrap(function() coroutine.yield(5) end)()", "0"),
    ("EVAL", "return redis.call('set', KEYS[1], ARGV[1])", "1", "kk", "vv"),
    ("EVAL", "return {redis.call('get', KEYS[1]), ARGV[2]}", "1", "kk", "vv"),
    ("EVAL_RO", "return redis.call('set', 'k', 'v')", "0"),
    ("EVAL_RO", "return redis.pcall('set', 'k', 'v')", "0"),
    ("EVAL_RO", "return redis.call('get', 'kk')", "0"),
]


@pytest.mark.parametrize("args", CASES, ids=[" ".join(case)[:60] for case in CASES])
def test_command_matches_redis(pair: Pair, args: tuple[str, ...]) -> None:
    # Cases run alone on flushed servers; those that need a cached script load it first.
    pair.check("SCRIPT", "LOAD", "return 1")
    pair.check(*args)


def test_keys_argv_and_calls_see_the_data(pair: Pair) -> None:
    script = "redis.call('set', KEYS[1], ARGV[1]); return {redis.call('get', KEYS[1]), #KEYS, #ARGV}"
    assert pair.check("EVAL", script, 1, "k", "v") == [b"v", 1, 1]
    assert pair.check("GET", "k") == b"v"
    sha = pair.check("SCRIPT", "LOAD", script)
    assert pair.check("EVALSHA", sha, 1, "k2", "w") == [b"w", 1, 1]
    assert pair.check("EVALSHA", sha.upper(), 1, "k3", "x") == [b"x", 1, 1]
    assert pair.check("EVALSHA_RO", sha, 1, "k", "v") == Err(
        "ERR Write commands are not allowed from read-only scripts. "
        f"script: {sha.decode()}, on @user_script:1."
    )


def test_eval_caches_the_script_and_flush_forgets_it(pair: Pair) -> None:
    sha = "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"  # sha1("return 1")
    pair.check("SCRIPT", "FLUSH")
    assert pair.check("SCRIPT", "EXISTS", sha) == [0]
    assert pair.check("EVALSHA", sha, 0) == Err("NOSCRIPT No matching script. Please use EVAL.")
    assert pair.check("EVAL", "return 1", 0) == 1
    assert pair.check("SCRIPT", "EXISTS", sha) == [1]
    assert pair.check("EVALSHA", sha, 0) == 1
    assert pair.check("SCRIPT", "FLUSH", "SYNC") == "OK"
    assert pair.check("SCRIPT", "EXISTS", sha) == [0]


@pytest.mark.parametrize(
    "body",
    [
        "#!lua\nreturn 1",
        "#!lua flags=no-writes,allow-oom\nreturn 1",
        "#!lua flags=\nreturn 1",
        "#!lua flags=bogus\nreturn 1",
        "#!lua name=x\nreturn 1",
        "#!js\nreturn 1",
        "#!lua flags=no-writes",
        "#!lua\nerror('x')",
        "\nerror('x')",
        "#!lua flags=no-writes\nreturn redis.call('set', 'k', 'v')",
        "#!lua flags=no-writes\nreturn redis.pcall('set', 'k', 'v')",
        "local a = 1\n\nlocal t = nil\nreturn t.x",
        "local function f()\n error('deep')\nend\nf()",
        "local function f()\n return redis.call('nosuch')\nend\n\nf()",
        "return redis.call('echo', 'a\\0b')",
        "return 'a\\0b'",
    ],
)
def test_shebangs_and_multiline_errors_match_redis(pair: Pair, body: str) -> None:
    pair.check("EVAL", body, 0)


def test_script_errors_inside_exec_and_eval_in_multi(pair: Pair) -> None:
    pair.check("MULTI")
    assert pair.check("EVAL", "return redis.call('set', KEYS[1], 'x')", 1, "k") == "QUEUED"
    assert pair.check("EVAL", "return redis.call('nosuch')", 0) == "QUEUED"
    assert pair.check("EVAL", "return redis.call('get', KEYS[1])", 1, "k") == "QUEUED"
    reply = pair.check("EXEC")
    assert reply[0] == "OK"
    assert isinstance(reply[1], Err)
    assert reply[2] == b"x"


def test_script_writes_dirty_watchers(pair: Pair) -> None:
    pair.check("WATCH", "k")
    pair.check("EVAL", "return redis.call('set', 'k', 'v')", 0)
    pair.check("MULTI")
    pair.check("GET", "k")
    assert pair.check("EXEC") is None


def test_select_inside_a_script_does_not_change_the_callers_database(pair: Pair) -> None:
    assert pair.check("EVAL", "redis.call('select', 1); return redis.call('set', 'k', 'db1')", 0) == "OK"
    assert pair.check("GET", "k") is None
    pair.check("SELECT", "1")
    assert pair.check("GET", "k") == b"db1"
    pair.check("SELECT", "0")


def test_the_sandbox_holds(client: RespConn) -> None:
    # Nothing of the host is reachable: no os/io/debug/python, no bytecode, no attribute
    # access on the callables (lupa objects), read-only libraries across scripts.
    for body in (
        "return os.execute('true')",
        "return io.open('/etc/passwd')",
        "return debug.getinfo(1)",
        "return python.eval('1')",
        "return redis.call.__self__",
        "return getmetatable(redis.call).__index(redis.call, '__self__')",
        "return loadstring(string.dump(function() return 1 end))()",
        "return getfenv(0)",
        "getmetatable('').__index.upper = nil",
    ):
        assert isinstance(client.call("EVAL", body, 0), Err), body
    assert client.call("EVAL", "return ('x'):upper()", 0) == b"X"
    assert client.call("EVAL", "return loadstring(string.dump(function() return 1 end))", 0) is None


def test_a_runaway_script_is_stopped_by_lua_time_limit(server_factory: Callable[..., ServerThread]) -> None:
    running = server_factory(lua_time_limit=200)
    conn = RespConn(running.port, timeout=30)
    try:
        for body in (
            "while true do end",
            # Catching the error must not let it run on.
            "while true do pcall(function() while true do end end) end",
        ):
            started = time.monotonic()
            reply = conn.call("EVAL", body, 0)
            assert time.monotonic() - started < 10
            assert isinstance(reply, Err)
            assert reply.message.startswith("ERR Script killed: it ran longer than lua-time-limit script: ")
        assert conn.call("EVAL", "return 1", 0) == 1  # the state is still usable
        assert conn.call("SCRIPT", "KILL") == Err("NOTBUSY No scripts in execution right now.")
    finally:
        conn.close()


def test_resp3_replies_follow_setresp(pair: Pair) -> None:
    # redis.setresp(3) changes how command replies reach the script (RESP2 client here).
    script = "redis.setresp(3); local r = redis.call('get', 'absent'); return type(r)"
    assert pair.check("EVAL", script, 0) == b"nil"
    assert pair.check("EVAL", "return type(redis.call('get', 'absent'))", 0) == b"boolean"


def test_project_backend_scripts_match_redis(pair: Pair) -> None:
    # The redis backend's only script (Lua PERSIST that tells "absent" from "no expiry").
    for key, ttl in (("persist-me", "100"), ("no-expiry", None)):
        for conn in (pair.ours, pair.real):
            conn.call("SET", key, "v", *(("EX", ttl) if ttl else ()))
    assert pair.check("EVAL", _PERSIST, 1, "absent") == 0
    assert pair.check("EVAL", _PERSIST, 1, "persist-me") == 1
    pair.check("EVAL", _PERSIST, 1, "no-expiry")
    assert pair.check("TTL", "persist-me") == -1


def test_redis_py_register_script(rclient: redis.Redis) -> None:
    incr = rclient.register_script(
        "local v = tonumber(redis.call('get', KEYS[1]) or '0') + tonumber(ARGV[1]) "
        "redis.call('set', KEYS[1], v) return v"
    )
    rclient.script_flush()
    assert incr(keys=["n"], args=[5]) == 5  # EVALSHA answers NOSCRIPT: redis-py loads it
    assert incr(keys=["n"], args=[2]) == 7
    assert rclient.get("n") == b"7"
    with pytest.raises(redis.ResponseError, match="Unknown Redis command"):
        rclient.eval("return redis.call('nosuch')", 0)


def test_scripts_leave_no_state_behind(pair: Pair) -> None:
    assert isinstance(pair.check("EVAL", "x = 1", 0), Err)
    assert pair.check("EVAL", "local x = 1; return x", 0) == 1
    assert pair.check("EVAL", "return rawget(_G, 'x')", 0) is None
    assert isinstance(pair.check("EVAL", "string.upper = nil", 0), Err)
    assert pair.check("EVAL", "return string.upper('a')", 0) == b"A"


def test_scripts_over_maxmemory_like_redis(
    server_factory: Callable[..., ServerThread], redis_server_factory: Any
) -> None:
    mine, theirs = server_factory(), redis_server_factory()
    pair = Pair(RespConn(mine.port), RespConn(theirs.port))
    try:
        pair.check("SET", "k", "v")
        server = mine.server
        assert server is not None

        def shrink() -> None:
            # The store evicts to stay within the pool; lowering the limit under what is used
            # puts our server over it, as Redis is with maxmemory 1.
            server.config.maxmemory = 1
            server.config.maxmemory_policy = "noeviction"

        mine.call(shrink)
        assert pair.real.call("CONFIG", "SET", "maxmemory", "1") == "OK"
        oom = "OOM command not allowed when used memory > 'maxmemory'."
        # A shebang script that may write is refused before it runs.
        assert pair.check("EVAL", "#!lua\nreturn 1", 0) == Err(oom)
        assert pair.check("EVAL", "#!lua flags=no-writes\nreturn redis.call('get', 'k')", 0) == b"v"
        assert pair.check("EVAL", "#!lua flags=allow-oom\nreturn 1", 0) == 1
        # EVAL_RO too: Redis takes the flags from the shebang alone.
        assert pair.check("EVAL_RO", "#!lua\nreturn redis.call('get', 'k')", 0) == Err(oom)
        # A legacy script runs; its first write is refused.
        assert pair.check("EVAL", "return redis.call('get', 'k')", 0) == b"v"
        assert pair.check("EVAL", "return redis.pcall('set', 'k', 'w')", 0) == Err(oom)
    finally:
        pair.ours.close()
        pair.real.close()


def test_script_management_is_refused_inside_scripts_like_redis(pair: Pair) -> None:
    for sub in ("flush", "load", "exists", "kill"):
        pair.check("EVAL", f"return redis.pcall('script', '{sub}', 'x')", 0)
    pair.check("EVAL", "return redis.call('script', 'flush')", 0)
    assert pair.check("EVAL", "return redis.call('script', 'help')[1]", 0).startswith("SCRIPT")


def test_deeply_nested_reply_is_an_error_not_a_crash(client: RespConn) -> None:
    reply = client.call("EVAL", "local t = {} for i = 1, 3000 do t = {t} end return t", 0)
    while isinstance(reply, list) and reply:
        reply = reply[0]
    assert reply == Err("ERR reached lua stack limit")
    assert client.call("EVAL", "local t = {} for i = 1, 100 do t = {t} end return 1", 0) == 1


LIBRARY_CASES = [
    ("EVAL", "return cjson.encode({1,2,{a=1}})", "0"),
    ("EVAL", "return cjson.encode({})", "0"),
    ("EVAL", "return cjson.encode('a/b\"c\\n\\1')", "0"),
    ("EVAL", "return cjson.encode({[1]=1,[3]=3})", "0"),
    ("EVAL", "return cjson.encode({[1]=1,[30]=3})", "0"),
    ("EVAL", "return cjson.encode({1, x=2})", "0"),
    ("EVAL", "return cjson.encode({[true]=1})", "0"),
    ("EVAL", "return cjson.encode(function() end)", "0"),
    ("EVAL", "return cjson.encode(0/0)", "0"),
    ("EVAL", "return cjson.encode(1/0)", "0"),
    ("EVAL", "return cjson.encode(0.1)", "0"),
    ("EVAL", "return cjson.encode(123456789012345)", "0"),
    ("EVAL", "return cjson.encode(true)", "0"),
    ("EVAL", "return cjson.encode(nil)", "0"),
    ("EVAL", "return cjson.encode()", "0"),
    ("EVAL", "return cjson.encode(cjson.null)", "0"),
    ("EVAL", "return cjson.encode('\\200')", "0"),
    (
        "EVAL",
        'local t = cjson.decode(\'[1,2.5,"x",true,false,null,{"a":[]}]\'); '
        "return {t[1], tostring(t[2]), t[3], tostring(t[4]), tostring(t[5]), "
        "tostring(t[6] == cjson.null), type(t[7].a)}",
        "0",
    ),
    ("EVAL", "return cjson.decode('\"\\u00e9\"')", "0"),
    ("EVAL", "return cjson.decode('[1,')", "0"),
    ("EVAL", "return cjson.decode('')", "0"),
    ("EVAL", "return cjson.decode('x')", "0"),
    ("EVAL", "return cjson.decode(5)", "0"),
    ("EVAL", "return cjson.decode()", "0"),
    ("EVAL", "return cjson.decode('12345678901234567890')", "0"),
    ("EVAL", "return tostring(cjson.null)", "0"),
    ("EVAL", "return type(cjson.null)", "0"),
    ("EVAL", "return bit.band('x')", "0"),
    ("EVAL", "return bit.tohex(255, 2)", "0"),
    ("EVAL", "local t = {} for k in pairs(bit) do t[#t+1] = k end table.sort(t) return t", "0"),
    (
        "EVAL",
        "return {bit.band(7, 3), bit.bor(1,2), bit.bxor(5,1), bit.bnot(0), bit.lshift(1, 31), "
        "bit.rshift(-1, 28), bit.arshift(-16, 2), bit.tohex(255), bit.tobit(2^32+5), "
        "bit.tohex(-1, -4), bit.rol(1, 33), bit.ror(1, 1), bit.bswap(1), bit.band(0xff, 0x0f, 0x3), "
        "bit.tobit(2.5), bit.tobit(3.5), bit.tohex(1, 0)}",
        "0",
    ),
    ("EVAL", "return tostring(cjson.null)", "0"),
    ("EVAL", "return cjson.encode({a={}, b=cjson.null, c=1.5, d='x\"y'})", "0"),
    ("EVAL", "return cjson.encode({name='x', list={1,2,3}, nested={k={v=true}}, n=-0.5})", "0"),
    ("EVAL", 'return cjson.encode(cjson.decode(\'{"z":1,"a":[1,{"b":null}],"m":"\\\\u00e9"}\'))', "0"),
]


@pytest.mark.parametrize("args", LIBRARY_CASES, ids=[" ".join(case)[5:65] for case in LIBRARY_CASES])
def test_cjson_and_bit_match_redis(pair: Pair, args: tuple[str, ...]) -> None:
    pair.check(*args)


def test_cjson_syntax_errors_name_the_position(client: RespConn) -> None:
    # cjson names the token it expected ("Expected colon but found T_NUMBER"); we report the
    # position with a generic text (documented in docs/server.md).
    reply = client.call("EVAL", "return cjson.decode('{\"a\" 1}')", 0)
    assert isinstance(reply, Err)
    assert reply.message.startswith(
        "ERR user_script:1: Expected value but found invalid token at character 6"
    )


def test_resp3_client_gets_resp3_conversions(ours: ServerThread) -> None:
    # HELLO belongs to another command family; a RESP3 client is a Client with resp3 set.
    # Maps, sets and doubles follow the caller's protocol; booleans follow the script's
    # (redis.setresp), as redis-server 7.0 does: `redis-cli -3 eval "return {true,false}" 0`
    # answers 1 and nil, and the same after redis.setresp(3) answers true and false.
    from stratacache.server.connection import Client
    from stratacache.server.lua import engine_for
    from stratacache.server.resp import Boolean, encode

    server = ours.server
    assert server is not None
    body = b"return {true, false, {double=1.5}, {map={a=1}}, {set={x=true}}, nil}"
    out: list[Any] = []

    def run() -> None:
        engine = engine_for(server)
        client = Client(server)
        client.resp3 = True
        out.append(engine.run(client, engine.load(body), [], [], False))
        out.append(engine.run(client, engine.load(b"redis.setresp(3); " + body), [], [], False))
        out.append(engine.run(client, engine.load(b"return false"), [], [], False))
        client.resp3 = False
        out.append(engine.run(client, engine.load(b"return false"), [], [], False))
        out.append(engine.run(client, engine.load(b"redis.setresp(3); return {true, false}"), [], [], False))

    ours.call(run)
    plain, scripted, lone, third, resp2 = out
    assert plain[:2] == [1, None]
    assert plain[2:] == [1.5, {b"a": 1}, {b"x"}]
    assert encode(plain, resp3=True) == b"*5\r\n:1\r\n_\r\n,1.5\r\n%1\r\n$1\r\na\r\n:1\r\n~1\r\n$1\r\nx\r\n"
    assert isinstance(scripted[0], Boolean)
    assert scripted[0].value is True
    assert isinstance(scripted[1], Boolean)
    assert scripted[1].value is False
    assert encode(scripted[:2], resp3=True) == b"*2\r\n#t\r\n#f\r\n"
    assert lone is None
    assert third is None  # RESP2: false is the null bulk string
    assert encode(resp2, resp3=False) == b"*2\r\n:1\r\n:0\r\n"
