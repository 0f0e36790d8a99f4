"""
A real HTTP receiver for webhook tests: a twisted.web Site on port 0 that
records every request and answers with the status a test sets.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from twisted.internet import defer, reactor
from twisted.web import resource, server


class Received:
    def __init__(self, request: server.Request, body: bytes) -> None:
        self.method = request.method.decode()
        self.path = request.path.decode()
        self.headers = {
            k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()
        }
        self.body = body
        if self.method == "GET":
            query = request.uri.decode().partition("?")[2]
            self.signed = query.encode()
            self.form = dict(parse_qsl(query, keep_blank_values=True))
            self.pairs = parse_qsl(query, keep_blank_values=True)
        else:
            self.signed = body
            text = body.decode("utf-8", "replace")
            self.pairs = parse_qsl(text, keep_blank_values=True)
            self.form = dict(self.pairs)

    def __repr__(self) -> str:
        return f"<Received {self.method} {self.path} {self.form or self.body[:80]!r}>"


class _Recorder(resource.Resource):
    isLeaf = True

    def __init__(self, receiver: Receiver) -> None:
        super().__init__()
        self.receiver = receiver

    def render(self, request: server.Request) -> Any:
        body = request.content.read() if request.content else b""
        if self.receiver.down:
            # Down, but keeping the port: no other test's server can take it.
            self.receiver.refused += 1
            request.transport.abortConnection()
            return server.NOT_DONE_YET
        self.receiver._got(Received(request, body))
        if self.receiver.hang:
            self.receiver.hanging.append(request)
            request.notifyFinish().addBoth(lambda _: self.receiver.hanging.remove(request))
            return server.NOT_DONE_YET
        request.setResponseCode(self.receiver.status)
        return b"ok"


class Receiver:
    """C{start()}s listening; C{stop()} closes the port (refusing), C{start()} again reopens it."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.status = 200
        self.hang = False
        self.down = False
        """Drop every connection unanswered (a receiver that is down)."""
        self.refused = 0
        """Never answer (a slow receiver); C{hanging} holds the open requests."""
        self.hanging: list[server.Request] = []
        self.port: Any = None
        self.portNumber = 0
        self._waiting: list[tuple[int, defer.Deferred[None]]] = []

    def start(self) -> Receiver:
        site = server.Site(_Recorder(self))
        site.noisy = False
        self.port = reactor.listenTCP(self.portNumber, site, interface="127.0.0.1")
        self.portNumber = self.port.getHost().port
        return self

    def stop(self) -> defer.Deferred[None]:
        port, self.port = self.port, None
        return defer.maybeDeferred(port.stopListening) if port is not None else defer.succeed(None)

    def url(self, path: str = "/events") -> str:
        return f"http://127.0.0.1:{self.portNumber}{path}"

    def _got(self, received: Received) -> None:
        self.requests.append(received)
        still = []
        for count, d in self._waiting:
            if len(self.requests) >= count:
                d.callback(None)
            else:
                still.append((count, d))
        self._waiting = still

    def events(self, name: str) -> list[Received]:
        return [r for r in self.requests if r.headers.get("x-livechat-event") == name]

    def waitFor(self, count: int, timeout: float = 60.0) -> defer.Deferred[None]:
        """Fires once C{count} requests have arrived in all."""
        if len(self.requests) >= count:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._waiting.append((count, d))
        d.addTimeout(timeout, reactor)
        return d
