"""
The public HTTP side (port 13200 by default): a C{twisted.web} resource tree.

For now it answers C{GET /health}; the monitoring code, the widget, the
WebSocket and the REST API are mounted on the same root by later parts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

import livechat


def jsonBody(request: server.Request, status: int, body: dict[str, Any]) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, sort_keys=True).encode("utf-8") + b"\n"


class HealthResource(resource.Resource):
    """
    C{GET /health}: 200 and C{{"status": "ok", "storage": "ok"}} while the
    database answers within C{timeout} seconds, else 503 with the reason.
    Load balancers (haproxy's C{option httpchk}) poll it.
    """

    isLeaf = True
    _log = Logger()

    def __init__(self, check: Callable[[], defer.Deferred[None]], clock: Any, timeout: float = 3.0):
        super().__init__()
        self._check = check
        self._clock = clock
        self._timeout = timeout

    def render_GET(self, request: server.Request) -> Any:
        d = defer.maybeDeferred(self._check)
        d.addTimeout(self._timeout, self._clock)
        gone: list[bool] = []

        def finish(status: int, body: dict[str, Any]) -> None:
            if gone or request.finished:
                return
            request.write(jsonBody(request, status, body))
            request.finish()

        def ok(_: Any) -> None:
            finish(200, {"status": "ok", "storage": "ok", "version": livechat.__version__})

        def failed(f: Any) -> None:
            if gone:
                return
            reason = f.getErrorMessage() or f.type.__name__
            if f.check(defer.TimeoutError):
                reason = f"no answer within {self._timeout:g} s"
            self._log.warn("health check: storage unavailable: {reason}", reason=reason)
            finish(
                503,
                {
                    "status": "unavailable",
                    "storage": "unavailable",
                    "reason": reason,
                    "version": livechat.__version__,
                },
            )

        def disconnected(_: Any) -> None:
            gone.append(True)
            d.cancel()

        request.notifyFinish().addErrback(disconnected)
        d.addCallbacks(ok, failed)
        return server.NOT_DONE_YET

    render_HEAD = render_GET


class Root(resource.Resource):
    """The root of the public site.  Unknown paths are 404 in JSON."""

    def getChild(self, path: bytes, request: server.Request) -> resource.Resource:
        return NotFoundResource()

    def render_GET(self, request: server.Request) -> bytes:
        return jsonBody(request, 200, {"service": "livechat", "version": livechat.__version__})


class NotFoundResource(resource.Resource):
    isLeaf = True

    def render(self, request: server.Request) -> bytes:
        return jsonBody(request, 404, {"error": "not_found", "message": "no such resource"})


def makeSite(root: resource.Resource) -> server.Site:
    site = server.Site(root)
    site.displayTracebacks = False
    site.noisy = False
    return site


def makePublicRoot(health: Callable[[], defer.Deferred[None]], clock: Any) -> Root:
    root = Root()
    root.putChild(b"health", HealthResource(health, clock))
    return root
