"""
L{RedisBus}: L{IBus} across the nodes of a cluster, over Redis pub/sub with
txredisapi.

Each node delivers what it publishes to its own subscribers at once (so a
node keeps serving its local participants while Redis is away) and sends it
to Redis for the other nodes; a node ignores the copy of its own messages
that Redis sends back.  A node SUBSCRIBEs only to the channels it has
handlers for, so no node hears all traffic.

The two Redis connections (commands and subscriber) are owned by this
service: Twisted's C{ClientService} reconnects them with backoff, a PING
every C{pingInterval} seconds finds a connection that died without saying
so, and on every reconnection the subscriber SUBSCRIBEs again to every
channel.  Publishing is bounded: while Redis is slow or away, at most
C{maxPending} publishes wait for an answer and the rest are dropped (the
database holds everything that must not be lost; a receiver that missed
events fills the gap from it, and C{addReconnectListener} lets the core ask
every feed to check once Redis is back).  A receiver can only notice a gap
when a later event comes, so for the numbered chat events (C{replay=True})
the last one of each channel that was dropped is sent again once this node
is back on Redis: a node that came back earlier then fetches what it
missed.

hiredis is used when it is installed (txredisapi picks it).
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import txredisapi
from twisted.application import service
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer, protocol, task
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    UNIXClientEndpoint,
    wrapClientTLS,
)
from twisted.logger import Logger
from zope.interface import implementer

from livechat.interfaces import IBus

Handler = Callable[[dict[str, Any]], None]


def hiredisInUse() -> bool:
    return txredisapi.RedisProtocol is getattr(txredisapi, "HiredisProtocol", None)


class _Subscription:
    def __init__(self, bus: RedisBus, channel: str, handler: Handler) -> None:
        self._bus = bus
        self.channel = channel
        self.handler = handler

    def unsubscribe(self) -> defer.Deferred[None]:
        return self._bus._remove(self)


class _Factory(protocol.Factory):
    """The factory txredisapi's protocols expect (they call back into it on AUTH errors)."""

    isLazy = False
    noisy = False
    _log = Logger()

    def __init__(
        self,
        protocolClass: type,
        options: dict[str, Any],
        owner: RedisBus,
        ready: Callable[[Any], Any],
    ) -> None:
        self.protocolClass = protocolClass
        self.options = options
        self.owner = owner
        self.ready = ready

    def buildProtocol(self, addr: Any) -> Any:
        p = self.protocolClass(**self.options)
        p.factory = self
        p.owner = self.owner
        # Not ClientService's prepareConnection: a connection that fails while
        # being prepared is not closed by ClientService (and a stop during it
        # confuses its state machine), so readiness is handled here, once the
        # connection is up, and a failure simply drops the connection.
        p.whenConnected().addCallback(self._connected, p)
        return p

    def _connected(self, _: Any, p: Any) -> None:
        # txredisapi says "connected" from inside connectionMade, before the
        # endpoint has told ClientService; take the next turn of the reactor.
        def ready() -> None:
            d = defer.ensureDeferred(self.ready(p))
            d.addErrback(lambda f: self._notReady(p, f))

        self.owner._reactor.callLater(0, ready)

    def _notReady(self, p: Any, failure: Any) -> None:
        self._log.warn(
            "redis: connection not ready ({error}); dropping it", error=failure.getErrorMessage()
        )
        if p.transport is not None:
            p.transport.abortConnection()

    def stopTrying(self) -> None:
        pass

    def connectionError(self, message: str) -> None:
        self._log.error("redis: {message}", message=message)


class _Subscriber(txredisapi.SubscriberProtocol):  # type: ignore[misc]
    owner: RedisBus

    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        self.owner._received(channel, message)


def _endpoint(reactor: Any, url: str, timeout: float) -> Any:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return UNIXClientEndpoint(reactor, parts.path, timeout=timeout)
    host, port = parts.hostname or "localhost", parts.port or 6379
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        endpoint: Any = HostnameEndpoint(reactor, host, port, timeout=timeout)
    else:
        cls = TCP6ClientEndpoint if address.version == 6 else TCP4ClientEndpoint
        endpoint = cls(reactor, host, port, timeout=timeout)
    if parts.scheme == "rediss":
        from twisted.internet.ssl import optionsForClientTLS

        endpoint = wrapClientTLS(optionsForClientTLS(host), endpoint)
    return endpoint


def _options(url: str, replyTimeout: float) -> dict[str, Any]:
    parts = urlsplit(url)
    dbid = None
    path = parts.path.strip("/")
    if parts.scheme != "unix" and path:
        dbid = int(path)
    return {
        "charset": "utf-8",
        "replyTimeout": replyTimeout,
        "password": unquote(parts.password) if parts.password else None,
        "username": unquote(parts.username) if parts.username else None,
        "dbid": dbid,
        "convertNumbers": False,
    }


@implementer(IBus)
class RedisBus(service.Service):
    """
    @param url: C{redis://[user:password@]host:port/db}, C{rediss://...} or
        C{unix:/path/to/socket}.
    @param prefix: put before every channel name (several installations on
        one Redis).
    """

    _log = Logger()

    def __init__(
        self,
        url: str,
        reactor: Any,
        *,
        prefix: str = "",
        pingInterval: float = 5.0,
        replyTimeout: float = 5.0,
        connectTimeout: float = 5.0,
        maxPending: int = 10000,
        nodeId: str | None = None,
    ) -> None:
        self.setName("bus")
        self._url = url
        self._reactor = reactor
        self._prefix = prefix
        self._pingInterval = pingInterval
        self._replyTimeout = replyTimeout
        self._connectTimeout = connectTimeout
        self.maxPending = maxPending
        self.nodeId = nodeId or secrets.token_hex(6)
        self._ownPrefix = '{"n":' + json.dumps(self.nodeId) + ","
        self._ownPrefixBytes = self._ownPrefix.encode("utf-8")
        self._handlers: dict[str, list[_Subscription]] = {}
        self._commands: Any = None
        self._subscriber: Any = None
        self._commandsService: ClientService | None = None
        self._subscriberService: ClientService | None = None
        self._ping: task.LoopingCall | None = None
        self._reconnectListeners: list[Callable[[], Any]] = []
        self._lost = False
        self._waitingReady: list[defer.Deferred[None]] = []
        self.pending = 0
        self._unsent: dict[str, dict[str, Any]] = {}
        self.dropped = 0
        self.published = 0
        self.received = 0

    # -- life -------------------------------------------------------------------

    def startService(self) -> None:
        service.Service.startService(self)
        options = _options(self._url, self._replyTimeout)
        policy = backoffPolicy(initialDelay=0.2, maxDelay=5.0)
        self._commandsService = ClientService(
            _endpoint(self._reactor, self._url, self._connectTimeout),
            _Factory(txredisapi.RedisProtocol, options, self, self._commandsReady),
            retryPolicy=policy,
            clock=self._reactor,
        )
        subscriberOptions = dict(options, replyTimeout=None)
        self._subscriberService = ClientService(
            _endpoint(self._reactor, self._url, self._connectTimeout),
            _Factory(_Subscriber, subscriberOptions, self, self._subscriberReady),
            retryPolicy=policy,
            clock=self._reactor,
        )
        self._commandsService.startService()
        self._subscriberService.startService()
        self._ping = task.LoopingCall(self._pingBoth)
        self._ping.clock = self._reactor
        self._ping.start(self._pingInterval, now=False)
        self._log.info(
            "redis bus {url} (node {node}, {parser} parser)",
            url=_masked(self._url),
            node=self.nodeId,
            parser="hiredis" if hiredisInUse() else "python",
        )

    def stopService(self) -> defer.Deferred[None]:  # type: ignore[override]
        service.Service.stopService(self)
        if self._ping is not None and self._ping.running:
            self._ping.stop()
        stops = []
        for client in (self._commandsService, self._subscriberService):
            if client is not None:
                stops.append(client.stopService())
        self._commands = self._subscriber = None
        return defer.DeferredList(stops, consumeErrors=True).addCallback(lambda _: None)

    def whenConnected(self) -> defer.Deferred[None]:
        """Fires when both connections are up and subscribed (tests, start-up)."""
        if self.connected:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._waitingReady.append(d)
        return d

    def _checkReady(self) -> None:
        if not self.connected:
            return
        waiting, self._waitingReady = self._waitingReady, []
        for d in waiting:
            d.callback(None)
        if self._lost:
            # Both connections are back after a loss: whatever was published
            # meanwhile did not reach this node; let the listeners catch up.
            self._lost = False
            self._replayUnsent()
            for listener in list(self._reconnectListeners):
                try:
                    listener()
                except Exception:
                    self._log.failure("redis reconnect listener")

    @property
    def connected(self) -> bool:
        return self._commands is not None and self._subscriber is not None

    async def _commandsReady(self, p: Any) -> None:
        self._commands = p
        p.whenDisconnected().addCallback(self._commandsLost)
        self._log.info("redis: command connection up")
        self._checkReady()

    def _commandsLost(self, p: Any) -> None:
        if self._commands is p:
            self._commands = None
            self._lost = True
            if self.running:
                self._log.warn("redis: command connection lost; reconnecting")

    async def _subscriberReady(self, p: Any) -> None:
        channels = [self._prefix + c for c in self._handlers]
        if channels:
            subscribed = p.subscribe(channels)
            subscribed.addTimeout(self._replyTimeout, self._reactor)
            await subscribed
        self._subscriber = p
        p.whenDisconnected().addCallback(self._subscriberLost)
        self._log.info("redis: subscriber up, {n} channel(s) subscribed", n=len(channels))
        self._checkReady()

    def _subscriberLost(self, p: Any) -> None:
        if self._subscriber is p:
            self._subscriber = None
            self._lost = True
            if self.running:
                self._log.warn("redis: subscriber lost; local delivery goes on, reconnecting")

    def _pingBoth(self) -> None:
        for p in (self._commands, self._subscriber):
            if p is None:
                continue
            try:
                d = p.ping()
            except Exception:
                p.transport.abortConnection()
                continue
            d.addTimeout(self._replyTimeout, self._reactor)
            d.addErrback(lambda f, p=p: self._pingFailed(p, f))

    def _pingFailed(self, p: Any, failure: Any) -> None:
        self._log.warn(
            "redis: no answer to PING ({error}); dropping the connection",
            error=failure.getErrorMessage(),
        )
        if p.transport is not None:
            p.transport.abortConnection()

    def addReconnectListener(self, listener: Callable[[], Any]) -> None:
        """Call C{listener()} whenever both connections are back after a loss."""
        self._reconnectListeners.append(listener)

    # -- IBus -------------------------------------------------------------------

    def publish(
        self, channel: str, message: dict[str, Any], replay: bool = False
    ) -> defer.Deferred[None]:
        """
        Deliver to this node's subscribers at once and send to Redis for the
        others.  With C{replay}, a message Redis did not take (disconnected,
        too many waiting, the command failed) is kept, the last one per
        channel, and sent again when the connections are back: for messages
        receivers de-duplicate (numbered chat events), so that a node which
        resynchronised before this one reconnected still hears that there is
        something to fetch.
        """
        self._dispatch(channel, message)
        self._send(channel, message, replay)
        return defer.succeed(None)

    def _send(self, channel: str, message: dict[str, Any], replay: bool) -> None:
        p = self._commands
        if p is None:
            self._dropped(channel, message, replay)
            return
        if self.pending >= self.maxPending:
            self._dropped(channel, message, replay)
            if self.dropped % 1000 == 1:
                self._log.warn(
                    "redis: {n} publishes waiting; dropping (dropped {d} so far)",
                    n=self.pending,
                    d=self.dropped,
                )
            return
        payload = json.dumps({"n": self.nodeId, "m": message}, separators=(",", ":"))
        try:
            d = p.publish(self._prefix + channel, payload)
        except Exception:
            self._dropped(channel, message, replay)
            return
        self.pending += 1
        self.published += 1

        def done(result: Any) -> None:
            self.pending -= 1
            if not self.pending and self._unsent and self.connected and not self._lost:
                self._replayUnsent()

        def failed(f: Any) -> None:
            self.pending -= 1
            self._dropped(channel, message, replay)

        d.addCallbacks(done, failed)

    def _dropped(self, channel: str, message: dict[str, Any], replay: bool) -> None:
        self.dropped += 1
        if not replay:
            return
        self._unsent.pop(channel, None)
        if len(self._unsent) >= self.maxPending:
            del self._unsent[next(iter(self._unsent))]  # the oldest channel's
        self._unsent[channel] = message

    def _replayUnsent(self) -> None:
        unsent, self._unsent = self._unsent, {}
        if unsent:
            self._log.info("redis: sending again the last of {n} channel(s)", n=len(unsent))
        for channel, message in unsent.items():
            self._send(channel, message, True)

    def subscribe(self, channel: str, handler: Handler) -> defer.Deferred[_Subscription]:
        subscription = _Subscription(self, channel, handler)
        first = channel not in self._handlers
        self._handlers.setdefault(channel, []).append(subscription)
        if first and self._subscriber is not None:
            try:
                d = self._subscriber.subscribe(self._prefix + channel)
            except Exception:
                return defer.succeed(subscription)
            d.addErrback(
                lambda f: self._log.warn(
                    "redis SUBSCRIBE {c}: {e}", c=channel, e=f.getErrorMessage()
                )
            )
            return d.addBoth(lambda _: subscription)
        return defer.succeed(subscription)

    def _remove(self, subscription: _Subscription) -> defer.Deferred[None]:
        subscriptions = self._handlers.get(subscription.channel)
        if not subscriptions or subscription not in subscriptions:
            return defer.succeed(None)
        subscriptions.remove(subscription)
        if subscriptions:
            return defer.succeed(None)
        del self._handlers[subscription.channel]
        if self._subscriber is not None:
            try:
                d = self._subscriber.unsubscribe(self._prefix + subscription.channel)
            except Exception:
                return defer.succeed(None)
            d.addErrback(lambda f: None)
            return d.addCallback(lambda _: None)
        return defer.succeed(None)

    def channels(self) -> list[str]:
        """The channels this node has handlers for (and so subscribes to)."""
        return sorted(self._handlers)

    # -- receiving ----------------------------------------------------------------

    def _received(self, channel: Any, payload: Any) -> None:
        if isinstance(channel, bytes):
            channel = channel.decode("utf-8")
        if self._prefix:
            if not channel.startswith(self._prefix):
                return
            channel = channel[len(self._prefix) :]
        # Our own publishes come back: known by their start, before any JSON
        # is decoded (the envelope is written with the node id first).
        if isinstance(payload, bytes):
            if payload.startswith(self._ownPrefixBytes):
                return
        elif isinstance(payload, str) and payload.startswith(self._ownPrefix):
            return
        try:
            envelope = json.loads(payload)
            if envelope.get("n") == self.nodeId:
                return
            message = envelope["m"]
        except (ValueError, KeyError, TypeError, AttributeError):
            self._log.warn("redis: unreadable message on {channel}", channel=channel)
            return
        self.received += 1
        self._dispatch(channel, message)

    def _dispatch(self, channel: str, message: dict[str, Any]) -> None:
        for subscription in list(self._handlers.get(channel, ())):
            try:
                subscription.handler(message)
            except Exception:
                self._log.failure("bus handler for {channel} failed", channel=channel)


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(":" + parts.password + "@", ":****@")
    return url
