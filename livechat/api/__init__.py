"""
The Enterprise REST API, C{/api/v1} on the public HTTP port: JSON, API keys
per licence with scopes, OpenAPI 3 at C{/api/v1/openapi.json}.

This module is the plumbing (routing, authentication, rate limits, errors,
body limits); L{livechat.api.v1} declares the routes and their OpenAPI
description side by side, so the document cannot leave a route out.
"""

from __future__ import annotations

import hmac
import json
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import attr
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

from livechat import jsontext
from livechat.apikeys import checkKey

MAX_ID = 2**62


class ApiError(Exception):
    """An error answer: HTTP status, stable code, message for people."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def notFound(what: str) -> ApiError:
    return ApiError(404, "not_found", f"no {what}")


@attr.s(frozen=True, auto_attribs=True)
class Principal:
    """Who calls: a licence's API key, or the server credential (C{licence} None)."""

    licence: int | None
    keyId: str
    scopes: frozenset[str]


@attr.s(frozen=True, auto_attribs=True)
class Raw:
    """A non-JSON answer (a text transcript, an export)."""

    body: bytes
    contentType: str
    status: int = 200


@attr.s(frozen=True, auto_attribs=True)
class Route:
    method: str
    path: str
    handler: Callable[..., Awaitable[Any]]
    scope: str
    """C{"server"}, C{"api"}, C{"connector"} or C{"public"}."""
    operation: dict[str, Any]
    pattern: re.Pattern[str]
    params: tuple[str, ...]


def compileRoute(
    method: str, path: str, handler: Any, scope: str, operation: dict[str, Any]
) -> Route:
    names = tuple(re.findall(r"\{(\w+)\}", path))
    regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$"
    return Route(method, path, handler, scope, operation, re.compile(regex), names)


class RateLimiter:
    """
    A token bucket per key: C{rate} per second, C{burst} at once.  At most
    C{maxKeys} buckets are kept (the least recently used go first).
    """

    def __init__(self, clock: Any, maxKeys: int = 10000) -> None:
        self._clock = clock
        self._maxKeys = maxKeys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, rate: float, burst: float) -> float:
        """Take one token; 0 when allowed, else the seconds to wait."""
        now = self._clock.seconds()
        tokens, last = self._buckets.pop(key, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1 - tokens) / rate
        while len(self._buckets) > self._maxKeys:
            self._buckets.popitem(last=False)
        return wait


class Context:
    """What a handler gets: the request's parts, the caller, the node's pieces."""

    def __init__(self, api: ApiResource, request: server.Request, principal: Principal | None):
        self.api = api
        self.request = request
        self.principal = principal
        self._body: Any = None
        self._bodyRead = False

    @property
    def licence(self) -> int:
        assert self.principal is not None and self.principal.licence is not None
        return self.principal.licence

    def arg(self, name: str) -> str | None:
        args: dict[bytes, list[bytes]] = self.request.args or {}
        values = args.get(name.encode())
        if not values:
            return None
        try:
            return values[0].decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "bad_request", f"{name} is not UTF-8") from None

    def intArg(
        self, name: str, default: int | None = None, low: int = 0, high: int = MAX_ID
    ) -> int | None:
        raw = self.arg(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(400, "bad_request", f"{name} must be a whole number") from None
        if not low <= value <= high:
            raise ApiError(400, "bad_request", f"{name} must be between {low} and {high}")
        return value

    def limit(self, default: int = 50, high: int = 500) -> int:
        value = self.intArg("limit", default, 1, high)
        assert value is not None
        return value

    def json(self) -> dict[str, Any]:
        """The request body: a JSON object."""
        if not self._bodyRead:
            self._bodyRead = True
            maxBody = self.api.config()["API_MAX_BODY"]
            data = self.request.content.read(maxBody + 1) if self.request.content else b""
            if len(data) > maxBody:
                raise ApiError(413, "too_large", f"the body has more than {maxBody} bytes")
            if not data.strip():
                self._body = {}
            else:
                try:
                    self._body = jsontext.loads(data)
                except (ValueError, UnicodeDecodeError):
                    raise ApiError(400, "bad_request", "the body is not valid JSON") from None
        if not isinstance(self._body, dict):
            raise ApiError(400, "bad_request", "the body must be a JSON object")
        return self._body


Identify = Callable[[server.Request], Awaitable[Principal]]
"""Who sends a request: a L{Principal}, or an L{ApiError} (401, 403)."""


class ApiResource(resource.Resource):
    """
    C{/api/v1}: routes requests to the handlers of L{livechat.api.v1}.

    @param identify: who sends a request; by default the API key of its
        C{Authorization: Bearer} header.  The control panel mounts the same
        routes with its browser session instead (L{livechat.panel}).  The
        rate limits and the routes' scopes apply to either.
    """

    isLeaf = True
    _log = Logger()

    def __init__(
        self, parts: Any, routes: list[Route], clock: Any, identify: Identify | None = None
    ) -> None:
        super().__init__()
        self.parts = parts
        self.routes = routes
        self.clock = clock
        self.limiter = RateLimiter(clock)
        self.services: dict[str, Any] = {}
        self.identify: Identify = identify or self.bearer

    def config(self) -> Any:
        return self.parts.config

    def render(self, request: server.Request) -> Any:
        upgrade = self.services.get("connectorWebSocket")
        postpath = request.postpath or []
        if (
            upgrade is not None
            and len(postpath) == 4
            and postpath[0] == b"apps"
            and postpath[2:] == [b"connector", b"ws"]
        ):
            # /api/v1/apps/{appId}/connector/ws: the connector's WebSocket.
            return upgrade.render(request)
        d = defer.ensureDeferred(self._serve(request))
        gone: list[bool] = []

        def disconnected(_: Any) -> None:
            gone.append(True)

        request.notifyFinish().addErrback(disconnected)

        def write(result: tuple[int, bytes, str, dict[str, str]]) -> None:
            if gone or request.finished:
                return
            status, body, contentType, headers = result
            request.setResponseCode(status)
            request.setHeader(b"content-type", contentType.encode())
            request.setHeader(b"cache-control", b"no-store")
            for name, value in headers.items():
                request.setHeader(name.encode(), value.encode())
            if request.method != b"HEAD":
                request.write(body)
            request.finish()

        def crashed(f: Any) -> None:
            self._log.failure(
                "REST API {method} {uri} failed", f, method=request.method, uri=request.uri
            )
            write(_errorBody(ApiError(500, "internal", "the server failed; see its log")))

        d.addCallbacks(write, crashed)
        return server.NOT_DONE_YET

    async def _serve(self, request: server.Request) -> tuple[int, bytes, str, dict[str, str]]:
        try:
            return await self._dispatch(request)
        except ApiError as e:
            return _errorBody(e)

    async def _dispatch(self, request: server.Request) -> tuple[int, bytes, str, dict[str, str]]:
        try:
            path = "/" + "/".join(
                unquote(p.decode("utf-8"), errors="strict") for p in request.postpath or []
            )
        except UnicodeDecodeError:
            raise notFound("such resource") from None
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        method = request.method.decode("ascii", "replace").upper()
        if method == "HEAD":
            method = "GET"
        matched = [(r, m) for r in self.routes if (m := r.pattern.match(path))]
        if not matched:
            raise notFound("such resource")
        found = [(r, m) for r, m in matched if r.method == method]
        if not found:
            allowed = ", ".join(sorted({r.method for r, _ in matched}))
            e = ApiError(405, "method_not_allowed", f"use {allowed}")
            e.extra["headers"] = {"Allow": allowed}
            raise e
        # A literal segment wins over a parameter (/chats/export, /chats/{chatId}).
        found.sort(key=lambda rm: len(rm[0].params))
        route, match = found[0]
        length = request.getHeader("content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                raise ApiError(400, "bad_request", "bad Content-Length") from None
            if size > self.config()["API_MAX_BODY"]:
                raise ApiError(413, "too_large", "the request body is too large")
        principal = None
        if route.scope != "public":
            principal = await self._authenticate(request, route.scope)
        args: dict[str, Any] = {}
        for name in route.params:
            value = match.group(name)
            if name.endswith("Id") or name == "number":
                try:
                    number = int(value)
                except ValueError:
                    raise notFound(f"{name} {value!r}") from None
                if not 1 <= number <= MAX_ID:
                    raise notFound(f"{name} {value!r}")
                args[name] = number
            else:
                args[name] = value
        ctx = Context(self, request, principal)
        result = await route.handler(ctx, **args)
        if isinstance(result, Raw):
            return result.status, result.body, result.contentType, {}
        status, body = result
        return (
            status,
            json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n",
            "application/json; charset=utf-8",
            {},
        )

    async def _authenticate(self, request: server.Request, scope: str) -> Principal:
        return self.admit(await self.identify(request), scope)

    def admit(self, principal: Principal, scope: str) -> Principal:
        """C{principal}, if within its rate and allowed C{scope}; else L{ApiError}."""
        wait = self.limiter.take(
            principal.keyId, self.config()["API_RATE"], self.config()["API_BURST"]
        )
        if wait:
            raise ApiError(
                429,
                "rate_limited",
                f"too many requests; retry in {wait:.1f} s",
                headers={"Retry-After": str(max(1, int(wait + 0.999)))},
            )
        if scope == "server":
            if principal.licence is not None:
                raise ApiError(403, "forbidden", "this needs the server's API key (SERVER_API_KEY)")
        elif principal.licence is None:
            raise ApiError(
                403, "forbidden", "the server key manages licences only; use a licence's key"
            )
        elif scope == "connector":
            if not principal.scopes & {"connector", "api"}:
                raise ApiError(403, "forbidden", "this key lacks the connector scope")
        elif scope not in principal.scopes:
            raise ApiError(403, "forbidden", f"this key lacks the {scope} scope")
        return principal

    async def bearer(self, request: server.Request) -> Principal:
        """The principal of the request's API key (or the server key)."""
        header = request.getHeader("authorization") or ""
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "unauthorized",
                "send Authorization: Bearer <API key>",
                headers={"WWW-Authenticate": 'Bearer realm="livechat"'},
            )
        return await self.principalOfToken(token.strip())

    async def authenticateToken(self, token: str, scope: str) -> Principal:
        """The principal of an API key allowed C{scope} (rate limited), else L{ApiError}."""
        return self.admit(await self.principalOfToken(token), scope)

    async def principalOfToken(self, token: str) -> Principal:
        """The principal of an API key (or the server key); 401 when unknown or revoked."""
        serverKey = self.config()["SERVER_API_KEY"]
        principal: Principal | None = None
        if serverKey and hmac.compare_digest(token.encode(), serverKey.encode()):
            principal = Principal(None, "server", frozenset({"server"}))
        else:
            key = await checkKey(self.parts.store, token)
            if key is not None:
                principal = Principal(key.licence, key.key_id, key.scopes)
        if principal is None:
            raise ApiError(
                401,
                "unauthorized",
                "unknown or revoked API key",
                headers={"WWW-Authenticate": 'Bearer realm="livechat", error="invalid_token"'},
            )
        return principal


def _errorBody(e: ApiError) -> tuple[int, bytes, str, dict[str, str]]:
    headers = e.extra.pop("headers", {}) if e.extra else {}
    body = {"error": e.code, "message": e.message, **e.extra}
    return (
        e.status,
        json.dumps(body, sort_keys=True).encode("utf-8") + b"\n",
        "application/json; charset=utf-8",
        headers,
    )


class ApiRoot(resource.Resource):
    """C{/api}: C{v1} below it; anything else is a JSON 404."""

    def __init__(self, v1: ApiResource) -> None:
        super().__init__()
        self.v1 = v1
        self.putChild(b"v1", v1)

    def getChild(self, path: bytes, request: server.Request) -> resource.Resource:
        from livechat.protocols.http import NotFoundResource

        return NotFoundResource()

    def render(self, request: server.Request) -> bytes:
        from livechat.protocols.http import jsonBody

        return jsonBody(request, 404, {"error": "not_found", "message": "see /api/v1/openapi.json"})


def makeApiRoot(parts: Any) -> ApiRoot:
    """The C{/api} resource of a node (mounted by L{livechat.service.makeService})."""
    from livechat.api import v1

    return ApiRoot(v1.makeResource(parts))
