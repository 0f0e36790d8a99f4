"""
The visitors' side of the public HTTP site: the one-tag monitoring code,
the widget's assets and settings, the monitoring endpoint, the SSE
fallback's call endpoint, and the test page.  The WebSocket (L{websocket})
and the SSE stream (L{sse}) are mounted beside these by L{mountWeb}.

    /livechat.js                    the loader (the one tag's script)
    /livesupport/lib/livesupport.js the same loader (the seed's path)
    /livesupport/widget.js, .css    the widget, loaded when needed
    /livesupport/monitor            POST: a page view; gives the visitor's token
    /livesupport/config             GET: the licence's widget look and texts
    /livesupport/sse                GET: the event stream (fallback)
    /livesupport/call               POST: one request (fallback)
    /ws, /livesupport/ws            the WebSocket
    /                               the test page (the demo licence's tag)

A proxy may publish only C{/livechat.js}, C{/ws} and C{/livesupport/}.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import html
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import attr
from twisted.application import service
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.web import resource, server

import livechat
from livechat import jsontext
from livechat.core.detached import detachedVisitor
from livechat.core.errors import CoreError
from livechat.core.hub import Core, VisitorSession
from livechat.core.reception import Reception
from livechat.licencesettings import SELF, SettingsCache
from livechat.notify.mailer import loadTemplates
from livechat.protocols.webcalls import HTTP_STATUS, Visitor, VisitorCalls, error
from livechat.protocols.webpolicy import (
    Client,
    Door,
    Limits,
    Proxies,
    WebRefused,
    WebSettings,
    parseLicence,
)
from livechat.visitortoken import VisitorTokens, loadSecret, newVisitorId

ASSETS = {
    # served path: (file in livechat/web, content type)
    "livechat.js": ("livechat.js", "application/javascript; charset=utf-8"),
    "widget.js": ("widget.js", "application/javascript; charset=utf-8"),
    "widget.css": ("widget.css", "text/css; charset=utf-8"),
    "test_page_en.html": ("test_page_en.html", "text/html; charset=utf-8"),
    "test_page_pl.html": ("test_page_pl.html", "text/html; charset=utf-8"),
}
COOKIE = "lcv"
"""The server's own cookie (per licence: C{lcv<licence>}), a fallback identity."""
LANGUAGES = ("en", "pl")


@attr.s(frozen=True, auto_attribs=True)
class Asset:
    body: bytes
    gzipped: bytes
    contentType: str
    etag: str


def loadAssets() -> dict[str, Asset]:
    """
    Read the static files of C{livechat/web} (reads files: off the reactor
    thread).  The loader learns the widget's version, so the widget can be
    cached for long.
    """
    folder = resources.files("livechat").joinpath("web")
    raw = {name: folder.joinpath(f).read_bytes() for name, (f, _) in ASSETS.items()}
    version = hashlib.sha256(raw["widget.js"] + raw["widget.css"]).hexdigest()[:12]
    raw["livechat.js"] = raw["livechat.js"].replace(b"__WIDGET_VERSION__", version.encode())
    found = {}
    for name, body in raw.items():
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        found[name] = Asset(body, gzip.compress(body, 9, mtime=0), ASSETS[name][1], etag)
    return found


def jsonResponse(request: server.Request, status: int, body: Any) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def header(request: server.Request, name: str) -> str | None:
    value = request.getHeader(name)
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else value


class WebFront:
    """
    What the web resources share: the core and its front desk, the door
    (origins, bans), the limits, the tokens, the assets.  No request state
    is kept here that another node would need.
    """

    _log = Logger()

    def __init__(
        self,
        core: Core,
        reception: Reception,
        cache: SettingsCache,
        settings: WebSettings,
        clock: Any,
        logs: Any = None,
    ) -> None:
        self.core = core
        self.reception = reception
        self.cache = cache
        self.settings = settings
        self.clock = clock
        self.logs = logs
        self.proxies = Proxies(settings.trustedProxies)
        self.door = Door(cache, clock)
        self.limits = Limits(clock, settings)
        self.calls = VisitorCalls(core, reception, self.limits)
        self.tokens: VisitorTokens | None = None
        self.assets: dict[str, Asset] = {}
        self.demoLicence: int | None = None
        self.tabs: collections.Counter[tuple[int, str]] = collections.Counter()
        self.channels: set[Any] = set()
        """Open WebSocket and SSE connections of visitors on this node."""
        self.identity: Any = None
        """The L{livechat.identity.IdentityKeyFile} that checks signed identities."""

    def reconfigure(self, settings: WebSettings) -> None:
        self.settings = attr.evolve(
            self.settings,
            messageRate=settings.messageRate,
            messageBurst=settings.messageBurst,
            chatRate=settings.chatRate,
            chatBurst=settings.chatBurst,
            addressRate=settings.addressRate,
            addressBurst=settings.addressBurst,
            settingsCache=settings.settingsCache,
        )
        self.limits.configure(self.settings)
        self.cache.ttl = settings.settingsCache

    # -- who is asking --------------------------------------------------------------

    def clientOf(self, request: Any) -> Client:
        peer = request.getClientAddress()
        return self.proxies.client(
            getattr(peer, "host", "") or "",
            request.isSecure(),
            lambda name: header(request, name),
        )

    @staticmethod
    def originOf(request: Any) -> str | None:
        """The C{Origin} header, or the origin of the C{Referer} when there is none."""
        origin = header(request, "origin")
        if origin and origin != "null":
            return origin
        referer = header(request, "referer")
        if referer:
            from urllib.parse import urlsplit

            parts = urlsplit(referer)
            if parts.scheme in ("http", "https") and parts.netloc:
                return f"{parts.scheme}://{parts.netloc}"
        return None

    def identify(self, licence: int, token: Any, allowNew: bool) -> tuple[str, str, bool]:
        """
        The visitor a token names: C{(visitor id, token to give back, new)};
        a new visitor (and token) when C{allowNew} and the token is missing
        or not good; else L{WebRefused} (401).
        """
        assert self.tokens is not None, "the web service has not started"
        info = self.tokens.check(licence, token)
        if info is not None:
            if self.tokens.needsRenewal(info):
                return info.visitorId, self.tokens.issue(licence, info.visitorId), False
            return info.visitorId, token, False
        if not allowNew:
            raise WebRefused(
                "unauthorized", "the visitor token is missing, expired or not of this licence", 401
            )
        visitorId = newVisitorId()
        return visitorId, self.tokens.issue(licence, visitorId), True

    async def invitationOf(self, licence: int, visitorId: str) -> dict[str, Any] | None:
        """A proactive invitation the visitor has not answered yet, if any."""
        state = await self.core.presence.visitor(licence, visitorId)
        if state is None or state.invitation != "sent" or state.invited_by is None:
            return None
        operator = await self.core.operatorInfo(licence, state.invited_by)
        return {
            "type": "invitation",
            "invitationId": state.invitation_id,
            "operator": {
                "id": f"op:{state.invited_by}",
                "role": "AGENT",
                "name": operator.name if operator is not None else "",
            },
            "message": "",
        }

    async def welcome(
        self, session: VisitorSession, visitor: Visitor, token: str, requestId: Any = None
    ) -> dict[str, Any]:
        """The first message of a stream: who the visitor is and what is open."""
        teamId = getattr(session, "teamChatId", None)
        return {
            "type": "welcome",
            "id": requestId,
            "visitorId": visitor.visitorId,
            "token": token,
            "chats": sorted(c for c in session.feeds if c != teamId),
            "reception": await self.reception.status(visitor.licence, visitor.group),
            "invitation": await self.invitationOf(visitor.licence, visitor.visitorId),
            "limits": {"maxMessageLength": self.core.settings.maxMessageLength},
        }

    def log(self, channel: str, format: str, **fields: Any) -> None:
        if self.logs is not None and self.logs.enabled(channel):
            self.logs.write(channel, format, **fields)


def _cors(request: server.Request, origin: str | None) -> None:
    if origin:
        request.setHeader(b"access-control-allow-origin", origin.encode("latin-1"))
        request.setHeader(b"access-control-allow-credentials", b"true")
    request.setHeader(b"vary", b"Origin")


def _group(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise WebRefused("bad_request", "group (data-dispatch-to) is a group number", 400)


def _language(value: Any) -> str:
    return value if value in LANGUAGES else "en"


class _AsyncJSON(resource.Resource):
    """A leaf answering JSON from an async handler; refusals become error bodies."""

    isLeaf = True
    _log = Logger()

    def __init__(self, front: WebFront) -> None:
        super().__init__()
        self.front = front

    def _serve(
        self,
        request: server.Request,
        handler: Callable[[server.Request], Awaitable[tuple[int, Any]]],
    ) -> Any:
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        async def run() -> tuple[int, Any]:
            try:
                return await handler(request)
            except WebRefused as e:
                return e.status, error(None, e.code, e.message)
            except CoreError as e:
                return HTTP_STATUS.get(e.code, 400), error(None, e.code, e.message)

        def done(result: tuple[int, Any]) -> None:
            if gone or request.finished:
                return
            status, body = result
            request.write(jsonResponse(request, status, body))
            request.finish()

        def failed(f: Any) -> None:
            self._log.failure("web request {uri}", f, uri=request.uri)
            done((500, error(None, "internal", "the server could not do that")))

        defer.ensureDeferred(run()).addCallbacks(done, failed)
        return server.NOT_DONE_YET

    def readBody(self, request: server.Request) -> Any:
        limit = self.front.settings.maxMessageBytes
        content = request.content
        assert content is not None
        content.seek(0, 2)
        size = content.tell()
        content.seek(0)
        if size > limit:
            raise WebRefused("too_large", f"a request has at most {limit} bytes", 413)
        try:
            return jsontext.loads(content.read(limit))
        except ValueError:  # bad JSON, or bad UTF-8 (a UnicodeDecodeError)
            raise WebRefused("bad_request", "the body is not JSON", 400) from None

    def render_OPTIONS(self, request: server.Request) -> bytes:
        """CORS preflight: allowed methods and headers (the origin is checked on the request)."""
        origin = self.front.originOf(request)
        _cors(request, origin)
        request.setHeader(b"access-control-allow-methods", b"GET, POST, OPTIONS")
        request.setHeader(b"access-control-allow-headers", b"content-type")
        request.setHeader(b"access-control-max-age", b"600")
        request.setResponseCode(204)
        return b""


class MonitorResource(_AsyncJSON):
    """
    C{POST /livesupport/monitor}: a page view of the monitoring code.
    Body (JSON; sent as text/plain so browsers need no preflight)::

        {"licence": 123456, "token": "...", "url": "...", "title": "...",
         "referrer": "...", "group": 3, "lang": "en"}

    Answer: the visitor's id and token (new for a new visitor), the
    reception status, the open chat and a pending invitation.
    """

    def render_POST(self, request: server.Request) -> Any:
        return self._serve(request, self._monitor)

    async def _monitor(self, request: server.Request) -> tuple[int, Any]:
        front = self.front
        body = self.readBody(request)
        if not isinstance(body, dict):
            raise WebRefused("bad_request", "the body is a JSON object", 400)
        licence = parseLicence(body.get("licence"))
        client = front.clientOf(request)
        origin = front.originOf(request)
        front.limits.address(client.address)
        await front.door.admit(licence, origin, client)
        _cors(request, origin)
        group = _group(body.get("group"))
        cookieName = f"{COOKIE}{licence}"
        token = body.get("token") or (request.getCookie(cookieName.encode()) or b"").decode(
            "ascii", "replace"
        )
        visitorId, token, new = front.identify(licence, token, allowNew=True)
        ua = header(request, "user-agent") or ""
        fields = {}
        for name in ("url", "title", "referrer"):
            value = body.get(name)
            if value is not None and not isinstance(value, str):
                raise WebRefused("bad_request", f"{name} is text", 400)
            fields[name] = value or ""
        identity = self._identity(licence, visitorId, body)
        if identity is not None:
            fields["identity"] = identity
        state = await front.core.pageView(
            licence, visitorId, user_agent=ua, address=client.address, **fields
        )
        reception = await front.reception.status(licence, group)
        invitation = None
        if state.get("invitation") == "sent":
            invitation = await front.invitationOf(licence, visitorId)
        cache = front.cache
        look = {
            "color": await cache.get(licence, "widget.color"),
            "textColor": await cache.get(licence, "widget.text_color"),
            "position": await cache.get(licence, "widget.position"),
        }
        self._setCookie(request, cookieName, token, client.secure)
        front.log(
            "script",
            "{licence} {visitor} {address} {url}",
            licence=licence,
            visitor=visitorId,
            address=client.address,
            url=fields["url"][:300],
        )
        return 200, {
            "visitorId": visitorId,
            "token": token,
            "new": new,
            "returning": state.get("returning", False),
            "chatId": state.get("chatId"),
            "invitation": invitation,
            "reception": reception,
            "look": look,
            "tokenDays": front.settings.tokenDays,
            "verified": identity is not None,
        }

    def _identity(self, licence: int, visitorId: str, body: dict[str, Any]) -> Any:
        """
        The identity the website signed (C{identity}: name, email,
        customer_id, expires; C{signature}), for the core, or C{None} when
        there is none or it does not verify (dropped and logged).
        """
        claimed = body.get("identity")
        if claimed is None:
            return None
        signature = body.get("signature")
        if not isinstance(claimed, dict) or not isinstance(signature, (str, type(None))):
            raise WebRefused("bad_request", "identity is an object and signature text", 400)
        signed: dict[str, Any] = {"licence": licence, "visitor": visitorId}
        for name, limit in (("name", 200), ("email", 254), ("customer_id", 128)):
            value = claimed.get(name)
            if value is not None and (not isinstance(value, str) or len(value) > limit):
                raise WebRefused("bad_request", f"identity.{name} is text of at most {limit}", 400)
            signed[name] = value
        expires = claimed.get("expires")
        if expires is not None and (
            not isinstance(expires, int) or isinstance(expires, bool) or expires < 0
        ):
            raise WebRefused("bad_request", "identity.expires is seconds since the epoch", 400)
        signed["expires"] = expires
        keys = self.front.identity
        if keys is None:
            return None
        found = keys.verify(signed, signature)
        return found.toCore() if found is not None else None

    def _setCookie(self, request: server.Request, name: str, token: str, secure: bool) -> None:
        # A token is [A-Za-z0-9._-] only: no quoting needed.
        flags = "Secure; SameSite=None" if secure else "SameSite=Lax"
        cookie = (
            f"{name}={token}; Path=/; Max-Age={self.front.settings.tokenDays * 86400}; "
            f"HttpOnly; {flags}"
        )
        request.setHeader(b"set-cookie", cookie.encode("ascii"))


class ConfigResource(_AsyncJSON):
    """C{GET /livesupport/config?licence=N&lang=pl}: the widget's look and texts."""

    def render_GET(self, request: server.Request) -> Any:
        return self._serve(request, self._config)

    async def _config(self, request: server.Request) -> tuple[int, Any]:
        front = self.front
        args: dict[bytes, list[bytes]] = request.args or {}
        licence = parseLicence((args.get(b"licence") or [b""])[0])
        lang = _language((args.get(b"lang") or [b"en"])[0].decode("ascii", "replace"))
        client = front.clientOf(request)
        origin = front.originOf(request)
        front.limits.address(client.address)
        await front.door.admit(licence, origin, client)
        _cors(request, origin)
        cache = front.cache
        return 200, {
            "color": await cache.get(licence, "widget.color"),
            "textColor": await cache.get(licence, "widget.text_color"),
            "position": await cache.get(licence, "widget.position"),
            "prechat": await cache.get(licence, "widget.prechat") == "1",
            "texts": await cache.get(licence, f"widget.texts.{lang}"),
            "css": await cache.get(licence, "widget.css"),
            "language": lang,
            "maxMessageLength": front.core.settings.maxMessageLength,
        }


class CallResource(_AsyncJSON):
    """
    C{POST /livesupport/call}: one visitor request of the SSE fallback, on
    any node: C{{"licence": N, "token": "...", "type": ..., "id": ..., ...}}.
    The answer is the reply or error message, with the error's HTTP status.
    """

    def render_POST(self, request: server.Request) -> Any:
        return self._serve(request, self._call)

    async def _call(self, request: server.Request) -> tuple[int, Any]:
        front = self.front
        body = self.readBody(request)
        if not isinstance(body, dict):
            raise WebRefused("bad_request", "the body is a JSON object", 400)
        licence = parseLicence(body.get("licence"))
        client = front.clientOf(request)
        origin = front.originOf(request)
        await front.door.admit(licence, origin, client)
        _cors(request, origin)
        visitorId, _, _ = front.identify(licence, body.get("token"), allowNew=False)
        visitor = Visitor(
            licence=licence,
            visitorId=visitorId,
            client=client,
            group=_group(body.get("group")),
            language=_language(body.get("language")),
        )
        session = await detachedVisitor(front.core, licence, visitorId, client.address)
        answer = await front.calls.call(session, visitor, body)
        if answer["type"] == "error":
            return HTTP_STATUS.get(answer["code"], 400), answer
        return 200, answer


class AssetResource(resource.Resource):
    """A static file of C{livechat/web}, with its ETag and gzip when asked."""

    isLeaf = True

    def __init__(self, front: WebFront, name: str, cacheControl: bytes) -> None:
        super().__init__()
        self.front = front
        self.name = name
        self.cacheControl = cacheControl

    def render_GET(self, request: server.Request) -> bytes:
        asset = self.front.assets.get(self.name)
        if asset is None:
            return jsonResponse(request, 503, error(None, "unavailable", "starting"))
        request.setHeader(b"content-type", asset.contentType.encode())
        request.setHeader(b"cache-control", self.cacheControl)
        request.setHeader(b"etag", asset.etag.encode())
        request.setHeader(b"vary", b"Accept-Encoding")
        request.setHeader(b"x-content-type-options", b"nosniff")
        if header(request, "if-none-match") == asset.etag:
            request.setResponseCode(304)
            return b""
        if "gzip" in (header(request, "accept-encoding") or ""):
            request.setHeader(b"content-encoding", b"gzip")
            return asset.gzipped
        return asset.body

    render_HEAD = render_GET


class TestPage(resource.Resource):
    """
    C{GET /}: the seed's test page, with the embed tag of the demo licence
    (or of C{?licence=N}), in English or Polish (C{?lang=pl}).
    """

    isLeaf = True

    def __init__(self, front: WebFront) -> None:
        super().__init__()
        self.front = front

    def render_GET(self, request: server.Request) -> bytes:
        front = self.front
        args: dict[bytes, list[bytes]] = request.args or {}
        lang = (args.get(b"lang") or [b""])[0].decode("ascii", "replace")
        if lang not in LANGUAGES:
            accepted = header(request, "accept-language") or ""
            lang = "pl" if accepted.lower().startswith("pl") else "en"
        licenceArg = (args.get(b"licence") or [b""])[0].decode("ascii", "replace")
        licence = int(licenceArg) if licenceArg.isdigit() and len(licenceArg) < 11 else None
        licence = licence or front.demoLicence
        asset = front.assets.get(f"test_page_{lang}.html")
        if asset is None:
            return jsonResponse(request, 503, error(None, "unavailable", "starting"))
        client = front.clientOf(request)
        base = client.ownOrigin or ""
        if licence is None:
            tag = ""
            code = "livechat-admin create-licence ...; then open /?licence=NUMBER"
        else:
            code = f'<script src="{base}/livechat.js" data-licence="{licence}" async></script>'
            if lang == "pl":
                code = code.replace(" async>", ' data-lang="pl" async>')
            tag = code
        page = asset.body.decode("utf-8")
        page = page.replace("{{licence}}", html.escape(str(licence or "-")))
        page = page.replace("{{code}}", html.escape(code))
        page = page.replace("{{tag}}", tag)
        page = page.replace("{{version}}", html.escape(livechat.__version__))
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return page.encode("utf-8")


class WebService(service.Service):
    """
    Readies the web side before the HTTP listener starts: the token
    secret (shared by the nodes), the static files and mail templates (read
    in a thread), and the demo licence's allow-list (its own pages).
    """

    name = "web"  # type: ignore[assignment]
    _log = Logger()

    def __init__(self, front: WebFront, store: Any, config: Any, mailer: Any = None) -> None:
        self.front = front
        self.store = store
        self.config = config
        self.mailer = mailer

    def startService(self) -> defer.Deferred[None]:  # type: ignore[override]
        service.Service.startService(self)
        return defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        front = self.front
        secret = await loadSecret(self.store, self.config["SESSION_SECRET"])
        front.tokens = VisitorTokens(secret, front.clock, front.settings.tokenDays * 86400.0)
        front.assets = await threads.deferToThread(loadAssets)
        if self.mailer is not None:
            self.mailer.templates = await threads.deferToThread(loadTemplates)
        demo = await self.store.getState("demo_licence")
        if demo and demo.isdigit():
            front.demoLicence = int(demo)
            licence = self.store.forLicence(front.demoLicence)
            if await licence.getSetting("web.origins") is None:
                await licence.setSetting("web.origins", json.dumps([SELF]))
                self._log.info(
                    "demo licence {licence} admits this server's own pages (web.origins)",
                    licence=front.demoLicence,
                )
        from livechat.protocols.websocket import accelerationReport

        self._log.info("{report}", report=accelerationReport())

    def stopService(self) -> defer.Deferred[None]:  # type: ignore[override]
        service.Service.stopService(self)
        for channel in list(self.front.channels):
            channel.close("shutdown")
        if self.mailer is not None:
            self.mailer.stop()
        return defer.succeed(None)

    def reconfigure(self, config: Any) -> None:
        self.front.reconfigure(WebSettings.fromConfig(config))


class _Folder(resource.Resource):
    """A path with children; anything else below it is a JSON 404."""

    def getChild(self, path: bytes, request: server.Request) -> resource.Resource:
        from livechat.protocols.http import NotFoundResource

        return NotFoundResource()

    def render(self, request: server.Request) -> bytes:
        return jsonResponse(request, 404, error(None, "not_found", "no such resource"))


def mountWeb(root: resource.Resource, front: WebFront) -> None:
    """Put the web side's resources on the public root."""
    from livechat.protocols.sse import EventStreamResource
    from livechat.protocols.websocket import makeWebSocketResource

    loader = AssetResource(front, "livechat.js", b"public, max-age=300")
    root.putChild(b"livechat.js", loader)
    root.putChild(b"", TestPage(front))
    ws = makeWebSocketResource(front)
    root.putChild(b"ws", ws)
    support = _Folder()
    root.putChild(b"livesupport", support)
    lib = _Folder()
    support.putChild(b"lib", lib)
    lib.putChild(b"livesupport.js", loader)
    forever = b"public, max-age=31536000, immutable"
    support.putChild(b"widget.js", AssetResource(front, "widget.js", forever))
    support.putChild(b"widget.css", AssetResource(front, "widget.css", forever))
    support.putChild(b"monitor", MonitorResource(front))
    support.putChild(b"config", ConfigResource(front))
    support.putChild(b"call", CallResource(front))
    support.putChild(b"sse", EventStreamResource(front))
    support.putChild(b"ws", ws)


QUIET_PATHS = (b"/livesupport/", b"/livechat.js", b"/ws")
"""Requests not written to the main (access) log: page views, widget traffic.
With LOG_SCRIPT 1 the page views go to the lc_script channel log instead."""


class _WebRequest(server.Request):
    """
    A request of the public site that does not parse the C{Content-Type} of
    the web side's POSTs as a form (they are JSON, and parsing it costs a
    sixth of a page view).
    """

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if path.startswith(QUIET_PATHS):
            self._parsePOSTFormSubmission = False
        super().requestReceived(command, path, version)


def tuneSite(site: server.Site, prefixes: tuple[bytes, ...] = QUIET_PATHS) -> server.Site:
    """
    Ready the public site for the web side's traffic (thousands of page
    views a second): its requests stay out of the access log (with
    LOG_SCRIPT 1 page views go to the lc_script log), and its JSON POSTs are
    not parsed as forms.
    """
    log = site.log

    def quiet(request: server.Request) -> None:
        if not request.path.startswith(prefixes):
            log(request)

    site.log = quiet  # type: ignore[method-assign,assignment]
    site.requestFactory = _WebRequest
    return site


def makeWeb(parts: Any, reactor: Any) -> tuple[WebFront, WebService]:
    """The web side of a node (no I/O): its front and the service readying it."""
    from livechat.notify.mailer import Mailer, MailSettings

    config = parts.config
    settings = WebSettings.fromConfig(config)
    cache = SettingsCache(parts.store, reactor, settings.settingsCache)
    mailer = Mailer(MailSettings.fromConfig(config), reactor)
    reception = Reception(parts.core, cache, mailer)
    front = WebFront(parts.core, reception, cache, settings, reactor, parts.logs)
    return front, WebService(front, parts.store, config, mailer)
