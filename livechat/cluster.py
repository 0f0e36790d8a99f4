"""
The cluster's shared soft state in Redis: L{RedisPresence} (L{IPresence})
and L{RedisRouter} (L{IRouter}), on the command connection of the node's
L{livechat.bus.redis.RedisBus}.

Keys (after the bus prefix)::

    lc:<l>:ops                  SET   operators present
    lc:<l>:op:<id>              STR   their OperatorInfo (JSON), expires
    lc:<l>:op:<id>:nodes        SET   nodes holding their connections
    node:<node>                 STR   the node is alive, expires
    lc:<l>:online               STR   "1" while the licence's button is online
    lc:<l>:v:<visitor>          STR   the VisitorState (JSON), expires
    lc:<l>:visitors             ZSET  visitor -> last seen
    visitor-licences            SET   licences that have visitors
    lc:<l>:avails               SET   operators the router may consider
    lc:<l>:avail:<id>           HASH  status, capacity, groups, last; expires
    lc:<l>:load:<id>            SET   chats counted against the operator
    lc:<l>:queue                LIST  waiting route requests (JSON)

Every change the router makes (reserve capacity, give out the queue) is one
Lua script, so it is atomic across nodes.  Expiring keys are refreshed by
the nodes that hold the connections (a heartbeat every C{ttl / 3}); a node
that dies stops refreshing and its operators disappear by themselves.

While Redis is away, each node answers from what it knows locally (its own
operators and visitors, in a memory mirror) so local participants keep
being served; when Redis comes back the node writes that mirror back
(Redis in this set-up keeps nothing on disk, so after a restart it is empty).
"""

from __future__ import annotations

import json
from typing import Any

import attr
from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import implementer

from livechat.core.presence import MemoryPresence, OperatorInfo
from livechat.core.routing import Assignment, Availability, MemoryRouter, RouteRequest
from livechat.core.visitors import VisitorState
from livechat.interfaces import IPresence, IRouter


class RedisUnavailable(Exception):
    """The command connection is down."""


def _visitorRecord(state: VisitorState) -> str:
    return json.dumps(attr.asdict(state), separators=(",", ":"))


def _visitorFrom(text: Any) -> VisitorState:
    return VisitorState(**json.loads(text))


class _Redis:
    """Commands on the bus's connection, failing fast while it is down."""

    def __init__(self, bus: Any) -> None:
        self.bus = bus
        self.prefix = bus._prefix

    def key(self, *parts: Any) -> str:
        return self.prefix + ":".join(str(p) for p in parts)

    @property
    def up(self) -> bool:
        return self.bus._commands is not None

    def call(self, *args: Any) -> defer.Deferred[Any]:
        p = self.bus._commands
        if p is None:
            return defer.fail(RedisUnavailable("redis is not connected"))
        try:
            return p.execute_command(*args)
        except Exception as e:
            return defer.fail(RedisUnavailable(str(e)))

    def eval(self, script: str, keys: list[str], args: list[Any]) -> defer.Deferred[Any]:
        p = self.bus._commands
        if p is None:
            return defer.fail(RedisUnavailable("redis is not connected"))
        try:
            return p.eval(script, keys, [str(a) for a in args])
        except Exception as e:
            return defer.fail(RedisUnavailable(str(e)))


# -- presence ---------------------------------------------------------------------

_OPERATOR_DOWN = """
-- KEYS: nodes set, ops set, info key; ARGV: node, operator, node key prefix
redis.call('SREM', KEYS[1], ARGV[1])
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[3] .. node) == 0 then
    redis.call('SREM', KEYS[1], node)
  end
end
if redis.call('SCARD', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[2])
  redis.call('DEL', KEYS[3])
  return 1
end
return 0
"""

_SET_ONLINE = """
local old = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then redis.call('SET', KEYS[1], '1') else redis.call('DEL', KEYS[1]) end
if (old == '1') == (ARGV[1] == '1') then return 0 end
return 1
"""

_EXPIRED_VISITORS = """
-- KEYS: visitors zset; ARGV: cutoff, visitor key prefix
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 500)) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local state = redis.call('GET', ARGV[2] .. id)
    redis.call('DEL', ARGV[2] .. id)
    if state then table.insert(out, state) end
  end
end
return out
"""

_PUT_VISITOR = """
-- KEYS: visitor key, zset, licences set; ARGV: json, last seen, ttl, max, id, prefix, licence
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
redis.call('SADD', KEYS[3], ARGV[7])
local out = {}
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if extra > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, extra - 1)) do
    if id ~= ARGV[5] then
      redis.call('ZREM', KEYS[2], id)
      local state = redis.call('GET', ARGV[6] .. id)
      redis.call('DEL', ARGV[6] .. id)
      if state then table.insert(out, state) end
    end
  end
end
return out
"""


_OPERATOR_ABSENT = """
-- KEYS: info key, absent key; ARGV: now (ms), grace (ms), seconds to keep the absent key
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DEL', KEYS[2])
  return 0
end
local since = redis.call('GET', KEYS[2])
if not since then
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
  return 0
end
if tonumber(ARGV[1]) - tonumber(since) < tonumber(ARGV[2]) then
  return 0
end
redis.call('DEL', KEYS[2])
return 1
"""


@implementer(IPresence)
class RedisPresence:
    """
    Presence in Redis, with a memory mirror of what this node knows, used
    while Redis is away and written back when it returns.
    """

    _log = Logger()

    def __init__(
        self,
        bus: Any,
        clock: Any,
        nodeId: str,
        visitorIdle: float,
        maxVisitorsPerLicence: int = 20000,
        ttl: float = 30.0,
    ) -> None:
        self._redis = _Redis(bus)
        self._clock = clock
        self.nodeId = nodeId
        self.visitorIdle = visitorIdle
        self.maxVisitorsPerLicence = maxVisitorsPerLicence
        self.ttl = ttl
        self.mirror = MemoryPresence(clock, visitorIdle, maxVisitorsPerLicence)
        self._mine: dict[tuple[int, int], OperatorInfo] = {}
        self._heartbeat: task.LoopingCall | None = None
        bus.addReconnectListener(self._restore)

    def start(self) -> None:
        self._heartbeat = task.LoopingCall(self._beat)
        self._heartbeat.clock = self._clock
        self._heartbeat.start(self.ttl / 3, now=True)

    def stop(self) -> None:
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()

    def _beat(self) -> defer.Deferred[Any]:
        d = defer.ensureDeferred(self._refresh())
        d.addErrback(
            lambda f: (
                None if f.check(RedisUnavailable) else self._log.failure("presence heartbeat", f)
            )
        )
        return d

    async def _refresh(self) -> None:
        r = self._redis
        if not r.up:
            return
        ttl = str(int(self.ttl))
        await r.call("SET", r.key("node", self.nodeId), "1", "EX", ttl)
        for (licence, _), info in list(self._mine.items()):
            await self._writeOperator(licence, info)

    async def _writeOperator(self, licence: int, info: OperatorInfo) -> None:
        r = self._redis
        ttl = str(int(self.ttl))
        await r.call(
            "SET", r.key("lc", licence, "op", info.operator), json.dumps(info.toRecord()), "EX", ttl
        )
        await r.call("SADD", r.key("lc", licence, "op", info.operator, "nodes"), self.nodeId)
        await r.call("SADD", r.key("lc", licence, "ops"), str(info.operator))

    def _restore(self) -> None:
        """Redis is back (maybe empty): write back what this node holds."""

        async def restore() -> None:
            await self._refresh()
            for visitors in list(self.mirror._visitors._licences.values()):
                for state in list(visitors.values()):
                    if state.sessions:
                        await self.putVisitor(state)

        d = defer.ensureDeferred(restore())
        d.addErrback(lambda f: self._log.failure("restoring presence in redis", f))

    # -- operators -----------------------------------------------------------------

    async def _operatorUp(self, licence: int, info: OperatorInfo, node: str) -> None:
        self._mine[(licence, info.operator)] = info
        await self.mirror.operatorUp(licence, info, node)
        if self._redis.up:
            if not await self._redis.call("EXISTS", self._redis.key("node", self.nodeId)):
                await self._redis.call(
                    "SET", self._redis.key("node", self.nodeId), "1", "EX", str(int(self.ttl))
                )
            await self._writeOperator(licence, info)

    def operatorUp(self, licence: int, info: OperatorInfo, node: str) -> defer.Deferred[None]:
        return self._tolerant(self._operatorUp(licence, info, node))

    async def _operatorDown(self, licence: int, operator: int, node: str) -> bool:
        self._mine.pop((licence, operator), None)
        localGone = await self.mirror.operatorDown(licence, operator, node)
        if not self._redis.up:
            return localGone
        r = self._redis
        gone = await r.eval(
            _OPERATOR_DOWN,
            [
                r.key("lc", licence, "op", operator, "nodes"),
                r.key("lc", licence, "ops"),
                r.key("lc", licence, "op", operator),
            ],
            [node, operator, r.key("node", "")],
        )
        return bool(int(gone))

    def operatorDown(self, licence: int, operator: int, node: str) -> defer.Deferred[bool]:
        return self._tolerant(self._operatorDown(licence, operator, node), fallback=True)

    async def _operators(self, licence: int) -> list[OperatorInfo]:
        if not self._redis.up:
            return await self.mirror.operators(licence)
        r = self._redis
        ids = await r.call("SMEMBERS", r.key("lc", licence, "ops"))
        infos = []
        for operator in sorted(ids, key=int):
            text = await r.call("GET", r.key("lc", licence, "op", operator))
            if text is None:
                await r.call("SREM", r.key("lc", licence, "ops"), operator)
                continue
            infos.append(OperatorInfo.fromRecord(json.loads(text)))
        return sorted(infos, key=lambda i: i.nick.casefold())

    def operators(self, licence: int) -> defer.Deferred[list[OperatorInfo]]:
        return self._tolerant(
            self._operators(licence), mirror=lambda: self.mirror.operators(licence)
        )

    async def _operator(self, licence: int, operator: int) -> OperatorInfo | None:
        if not self._redis.up:
            return await self.mirror.operator(licence, operator)
        text = await self._redis.call("GET", self._redis.key("lc", licence, "op", operator))
        return None if text is None else OperatorInfo.fromRecord(json.loads(text))

    def operator(self, licence: int, operator: int) -> defer.Deferred[OperatorInfo | None]:
        return self._tolerant(
            self._operator(licence, operator),
            mirror=lambda: self.mirror.operator(licence, operator),
        )

    async def _setOnline(self, licence: int, online: bool) -> bool:
        changed = await self.mirror.setOnline(licence, online)
        if not self._redis.up:
            return changed
        result = await self._redis.eval(
            _SET_ONLINE, [self._redis.key("lc", licence, "online")], ["1" if online else "0"]
        )
        return bool(int(result))

    def setOnline(self, licence: int, online: bool) -> defer.Deferred[bool]:
        return self._tolerant(
            self._setOnline(licence, online), mirror=lambda: self.mirror.setOnline(licence, online)
        )

    # -- visitors ------------------------------------------------------------------

    async def _visitor(self, licence: int, visitorId: str) -> VisitorState | None:
        if not self._redis.up:
            return await self.mirror.visitor(licence, visitorId)
        text = await self._redis.call("GET", self._redis.key("lc", licence, "v", visitorId))
        return None if text is None else _visitorFrom(text)

    def visitor(self, licence: int, visitorId: str) -> defer.Deferred[VisitorState | None]:
        return self._tolerant(
            self._visitor(licence, visitorId),
            mirror=lambda: self.mirror.visitor(licence, visitorId),
        )

    async def _putVisitor(self, state: VisitorState) -> list[VisitorState]:
        evictedHere = await self.mirror.putVisitor(attr.evolve(state))
        if not self._redis.up:
            return evictedHere
        r = self._redis
        evicted = await r.eval(
            _PUT_VISITOR,
            [
                r.key("lc", state.licence, "v", state.id),
                r.key("lc", state.licence, "visitors"),
                r.key("visitor-licences"),
            ],
            [
                _visitorRecord(state),
                state.last_seen,
                int(self.visitorIdle * 2) + 60,
                self.maxVisitorsPerLicence,
                state.id,
                r.key("lc", state.licence, "v", ""),
                state.licence,
            ],
        )
        return [_visitorFrom(text) for text in evicted]

    def putVisitor(self, state: VisitorState) -> defer.Deferred[list[VisitorState]]:
        return self._tolerant(self._putVisitor(state), mirror=lambda: defer.succeed([]))

    async def _removeVisitor(self, licence: int, visitorId: str) -> VisitorState | None:
        local = await self.mirror.removeVisitor(licence, visitorId)
        if not self._redis.up:
            return local
        r = self._redis
        text = await r.call("GET", r.key("lc", licence, "v", visitorId))
        await r.call("DEL", r.key("lc", licence, "v", visitorId))
        await r.call("ZREM", r.key("lc", licence, "visitors"), visitorId)
        return None if text is None else _visitorFrom(text)

    def removeVisitor(self, licence: int, visitorId: str) -> defer.Deferred[VisitorState | None]:
        return self._tolerant(self._removeVisitor(licence, visitorId))

    async def _visitors(self, licence: int) -> list[VisitorState]:
        if not self._redis.up:
            return await self.mirror.visitors(licence)
        r = self._redis
        ids = await r.call("ZRANGE", r.key("lc", licence, "visitors"), "0", "-1")
        states = []
        for visitorId in ids:
            text = await r.call("GET", r.key("lc", licence, "v", visitorId))
            if text is not None:
                states.append(_visitorFrom(text))
        return sorted(states, key=lambda v: v.visit_started)

    def visitors(self, licence: int) -> defer.Deferred[list[VisitorState]]:
        return self._tolerant(self._visitors(licence), mirror=lambda: self.mirror.visitors(licence))

    async def _expiredVisitors(self) -> list[VisitorState]:
        local = await self.mirror.expiredVisitors()
        if not self._redis.up:
            return local
        r = self._redis
        cutoff = self._clock.seconds() - self.visitorIdle
        out: list[Any] = []
        for licence in await r.call("SMEMBERS", r.key("visitor-licences")):
            taken = await r.eval(
                _EXPIRED_VISITORS,
                [r.key("lc", licence, "visitors")],
                [cutoff, r.key("lc", licence, "v", "")],
            )
            out.extend(_visitorFrom(text) for text in taken)
            if not await r.call("ZCARD", r.key("lc", licence, "visitors")):
                await r.call("SREM", r.key("visitor-licences"), licence)
        return out

    def expiredVisitors(self) -> defer.Deferred[list[VisitorState]]:
        return self._tolerant(self._expiredVisitors(), mirror=lambda: defer.succeed([]))

    # -- the janitor's bookkeeping ------------------------------------------------------

    def operatorAbsent(self, licence: int, operator: int, grace: float) -> defer.Deferred[bool]:
        r = self._redis
        d = r.eval(
            _OPERATOR_ABSENT,
            [r.key("lc", licence, "op", operator), r.key("lc", licence, "op", operator, "absent")],
            [int(self._clock.seconds() * 1000), int(grace * 1000), int(grace) * 2 + 600],
        )
        return self._never(d.addCallback(lambda result: bool(int(result))))

    def lease(self, name: str, period: float) -> defer.Deferred[bool]:
        r = self._redis
        turn = int(self._clock.seconds() // period)
        keep = str(max(1, int(period * 2)))
        d = r.call("SET", r.key("lease", name, turn), self.nodeId, "NX", "EX", keep)
        return self._never(d.addCallback(lambda result: result is not None))

    def _never(self, d: defer.Deferred[bool]) -> defer.Deferred[bool]:
        """Without Redis, a node cannot tell whether the others are alive: answer no."""

        def failed(f: Any) -> bool:
            if f.check(RedisUnavailable, ConnectionError, defer.TimeoutError) or (
                "connection" in str(f.value).lower()
            ):
                return False
            return f  # type: ignore[no-any-return]

        return d.addErrback(failed)

    # -- failure handling ------------------------------------------------------------

    def _tolerant(self, work: Any, mirror: Any = None, fallback: Any = None) -> defer.Deferred[Any]:
        """
        Run C{work}; when Redis fails in the middle, answer from the mirror
        (or C{fallback}) rather than fail the chat.
        """
        d = defer.ensureDeferred(work)

        def failed(f: Any) -> Any:
            if (
                not f.check(RedisUnavailable, ConnectionError)
                and "connection" not in str(f.value).lower()
            ):
                return f
            self._log.warn(
                "presence: redis unavailable ({e}); answering locally", e=f.getErrorMessage()
            )
            if mirror is not None:
                return mirror()
            return fallback

        return d.addErrback(failed)


# -- routing -------------------------------------------------------------------------

_ROUTER = """
local base = ARGV[1]
local op = ARGV[2]
local now = tonumber(ARGV[3])

local function member(list, value)
  for _, x in ipairs(list) do if tostring(x) == tostring(value) then return true end end
  return false
end

local function candidate(req)
  local best, bestLoad, bestLast = nil, nil, nil
  for _, id in ipairs(redis.call('SMEMBERS', base .. 'avails')) do
    local a = redis.call('HMGET', base .. 'avail:' .. id, 'status', 'capacity', 'groups', 'last')
    if not a[1] then
      redis.call('SREM', base .. 'avails', id)
    else
      local status = tonumber(a[1])
      local cap = tonumber(a[2])
      local load = redis.call('SCARD', base .. 'load:' .. id)
      local ok = (status == 0 or status == 3) and cap > 0 and load < cap
      if ok and req.exclude and member(req.exclude, id) then ok = false end
      if ok and req.group ~= nil and req.group ~= cjson.null then
        ok = member(cjson.decode(a[3]), req.group)
      end
      if ok then
        if req.prefer ~= nil and req.prefer ~= cjson.null and tostring(req.prefer) == id then
          return id
        end
        local last = tonumber(a[4])
        if best == nil or load < bestLoad
           or (load == bestLoad and (last < bestLast
               or (last == bestLast and tonumber(id) < tonumber(best)))) then
          best, bestLoad, bestLast = id, load, last
        end
      end
    end
  end
  return best
end

local function give(id, chat)
  redis.call('SADD', base .. 'load:' .. id, chat)
  redis.call('HSET', base .. 'avail:' .. id, 'last', now)
end

local function drain()
  local made = {}
  local keep = {}
  local entries = redis.call('LRANGE', base .. 'queue', 0, -1)
  for _, e in ipairs(entries) do
    local req = cjson.decode(e)
    local id = candidate(req)
    if id then
      give(id, req.chat)
      table.insert(made, req.chat)
      table.insert(made, tonumber(id))
    else
      table.insert(keep, e)
    end
  end
  if #made > 0 then
    redis.call('DEL', base .. 'queue')
    for _, e in ipairs(keep) do redis.call('RPUSH', base .. 'queue', e) end
  end
  return made
end

local function dequeue(chat)
  for _, e in ipairs(redis.call('LRANGE', base .. 'queue', 0, -1)) do
    if tostring(cjson.decode(e).chat) == tostring(chat) then
      redis.call('LREM', base .. 'queue', 0, e)
    end
  end
end

if op == 'update' then
  -- ARGV: id, status, capacity, groups json, ttl
  local id = ARGV[4]
  local key = base .. 'avail:' .. id
  if redis.call('EXISTS', key) == 0 then redis.call('HSET', key, 'last', now) end
  redis.call('HSET', key, 'status', ARGV[5], 'capacity', ARGV[6], 'groups', ARGV[7])
  redis.call('EXPIRE', key, ARGV[8])
  redis.call('SADD', base .. 'avails', id)
  return drain()
elseif op == 'remove' then
  local id = ARGV[4]
  local chats = redis.call('SMEMBERS', base .. 'load:' .. id)
  redis.call('DEL', base .. 'load:' .. id, base .. 'avail:' .. id)
  redis.call('SREM', base .. 'avails', id)
  return chats
elseif op == 'route' then
  local req = cjson.decode(ARGV[4])
  dequeue(req.chat)
  local id = candidate(req)
  if id then
    give(id, req.chat)
    return {tonumber(id), 0}
  end
  req.exclude = {}
  req.prefer = cjson.null
  local n = redis.call('RPUSH', base .. 'queue', cjson.encode(req))
  return {-1, n}
elseif op == 'reserve' then
  redis.call('SADD', base .. 'load:' .. ARGV[4], ARGV[5])
  redis.call('HSET', base .. 'avail:' .. ARGV[4], 'last', now)
  return 1
elseif op == 'release' then
  redis.call('SREM', base .. 'load:' .. ARGV[4], ARGV[5])
  return drain()
elseif op == 'dequeue' then
  dequeue(ARGV[4])
  return 1
elseif op == 'refresh' then
  -- ARGV: ttl, ids...
  for i = 5, #ARGV do redis.call('EXPIRE', base .. 'avail:' .. ARGV[i], ARGV[4]) end
  return 1
end
return redis.error_reply('unknown router op ' .. op)
"""


@implementer(IRouter)
class RedisRouter:
    """
    The default routing policy (as L{MemoryRouter}), with the state in
    Redis and every change one Lua script: atomic across nodes.  While
    Redis is away the node routes among its own operators with a local
    L{MemoryRouter}; when Redis returns, it writes back its operators'
    availability and the chats they hold (from the database) and routes
    the chats that waited.
    """

    _log = Logger()

    def __init__(self, bus: Any, clock: Any, ttl: float = 30.0) -> None:
        self._redis = _Redis(bus)
        self._clock = clock
        self.ttl = ttl
        self.local = MemoryRouter(clock)
        self._mine: dict[tuple[int, int], Availability] = {}
        self._heartbeat: task.LoopingCall | None = None
        bus.addReconnectListener(self._restore)

    def start(self) -> None:
        self._heartbeat = task.LoopingCall(self._beat)
        self._heartbeat.clock = self._clock
        self._heartbeat.start(self.ttl / 3, now=False)

    def stop(self) -> None:
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()

    def _beat(self) -> defer.Deferred[Any]:
        byLicence: dict[int, list[int]] = {}
        for licence, operator in self._mine:
            byLicence.setdefault(licence, []).append(operator)
        calls = [
            self._script(licence, "refresh", int(self.ttl), *ops)
            for licence, ops in byLicence.items()
        ]
        d = defer.DeferredList(calls, consumeErrors=True)
        return d.addCallback(lambda _: None)

    def _script(self, licence: int, op: str, *args: Any) -> defer.Deferred[Any]:
        nowMS = int(self._clock.seconds() * 1000)
        return self._redis.eval(_ROUTER, [], [self._redis.key("lc", licence, ""), op, nowMS, *args])

    def _restore(self) -> None:
        """Redis is back: register this node's operators again (the core puts back their chats)."""

        async def restore() -> None:
            for (licence, _), availability in list(self._mine.items()):
                await self._script(
                    licence,
                    "update",
                    availability.operator,
                    int(availability.status),
                    availability.capacity,
                    json.dumps(sorted(availability.groups)),
                    int(self.ttl),
                )

        d = defer.ensureDeferred(restore())
        d.addErrback(lambda f: self._log.failure("restoring the router in redis", f))

    @staticmethod
    def _assignments(made: list[Any]) -> list[Assignment]:
        return [Assignment(int(made[i]), int(made[i + 1])) for i in range(0, len(made), 2)]

    def _fallback(self, work: defer.Deferred[Any], local: Any) -> defer.Deferred[Any]:
        def failed(f: Any) -> Any:
            if f.check(RedisUnavailable) or "connection" in str(f.value).lower():
                self._log.warn(
                    "router: redis unavailable ({e}); routing locally", e=f.getErrorMessage()
                )
                return local()
            return f

        return work.addErrback(failed)

    # -- IRouter -----------------------------------------------------------------

    def updateOperator(
        self, licence: int, availability: Availability
    ) -> defer.Deferred[list[Assignment]]:
        self._mine[(licence, availability.operator)] = availability
        localDone = self.local.updateOperator(licence, availability)
        if not self._redis.up:
            return localDone
        d = self._script(
            licence,
            "update",
            availability.operator,
            int(availability.status),
            availability.capacity,
            json.dumps(sorted(availability.groups)),
            int(self.ttl),
        ).addCallback(self._assignments)
        return self._fallback(d, lambda: localDone)

    def removeOperator(self, licence: int, operator: int) -> defer.Deferred[list[int]]:
        self._mine.pop((licence, operator), None)
        localDone = self.local.removeOperator(licence, operator)
        if not self._redis.up:
            return localDone
        d = self._script(licence, "remove", operator).addCallback(
            lambda chats: sorted(int(c) for c in chats)
        )
        return self._fallback(d, lambda: localDone)

    def leftNode(self, licence: int, operator: int) -> defer.Deferred[None]:
        """Another node holds the operator now: its heartbeat keeps them available."""
        self._mine.pop((licence, operator), None)
        self.local.removeOperator(licence, operator)
        return defer.succeed(None)

    def route(self, licence: int, request: RouteRequest) -> defer.Deferred[Assignment]:
        if not self._redis.up:
            return self.local.route(licence, request)
        payload = json.dumps(
            {
                "chat": request.chat,
                "group": request.group,
                "exclude": sorted(request.exclude),
                "prefer": request.prefer,
            }
        )

        def result(reply: list[Any]) -> Assignment:
            operator, position = int(reply[0]), int(reply[1])
            if operator < 0:
                return Assignment(request.chat, None, position)
            self.local.reserve(licence, operator, request.chat)
            return Assignment(request.chat, operator)

        d = self._script(licence, "route", payload).addCallback(result)
        return self._fallback(d, lambda: self.local.route(licence, request))

    def reserve(self, licence: int, operator: int, chat: int) -> defer.Deferred[None]:
        self.local.reserve(licence, operator, chat)
        if not self._redis.up:
            return defer.succeed(None)
        d = self._script(licence, "reserve", operator, chat).addCallback(lambda _: None)
        return self._fallback(d, lambda: None)

    def release(self, licence: int, operator: int, chat: int) -> defer.Deferred[list[Assignment]]:
        localDone = self.local.release(licence, operator, chat)
        if not self._redis.up:
            return localDone
        d = self._script(licence, "release", operator, chat).addCallback(self._assignments)
        return self._fallback(d, lambda: localDone)

    def dequeue(self, licence: int, chat: int) -> defer.Deferred[None]:
        self.local.dequeue(licence, chat)
        if not self._redis.up:
            return defer.succeed(None)
        d = self._script(licence, "dequeue", chat).addCallback(lambda _: None)
        return self._fallback(d, lambda: None)

    def queue(self, licence: int) -> defer.Deferred[list[int]]:
        if not self._redis.up:
            return self.local.queue(licence)
        d = self._redis.call("LRANGE", self._redis.key("lc", licence, "queue"), "0", "-1")
        d.addCallback(lambda entries: [int(json.loads(e)["chat"]) for e in entries])
        return self._fallback(d, lambda: self.local.queue(licence))

    def load(self, licence: int, operator: int) -> defer.Deferred[list[int]]:
        if not self._redis.up:
            return self.local.load(licence, operator)
        d = self._redis.call("SMEMBERS", self._redis.key("lc", licence, "load", operator))
        d.addCallback(lambda chats: sorted(int(c) for c in chats))
        return self._fallback(d, lambda: self.local.load(licence, operator))
