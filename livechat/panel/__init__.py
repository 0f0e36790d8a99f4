"""
The control panel: a second site, on C{PANEL_LISTEN} (by default
C{tcp:8443:interface=127.0.0.1}: the seed keeps the panel off the public port
and on a local network), for the administrators of a licence.

    /                       the panel (plain HTML/CSS/JS of livechat/web/panel)
    /static/<file>          its script, styles, print styles
    /preview/               the widget's live preview: the real widget.js and
    /preview/widget.js,.css widget.css, drawn with a look the page hands it
    /auth/login             POST {licence, nick, password}: a session (administrators only)
    /auth/session           GET: who is logged in, the CSRF token
    /auth/logout            POST; /auth/logout-everywhere POST
    /api/v1/...             the REST API (livechat.api.v1) for the session's licence

The panel adds no logic of its own: its pages call the same routes as the
REST API (L{livechat.api.v1}, L{livechat.api.v1admin}), mounted a second
time with another way of saying who calls: the browser session of
L{livechat.websession} (scope C{panel}, cookie C{lcsp}) instead of an API
key.  A session gives the routes of its own licence with every scope an API
key could have; each state-changing request needs the session's CSRF token
in C{X-CSRF-Token}.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

import attr
from twisted.application import service
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.web import resource, server

from livechat.api import ApiError, ApiResource, ApiRoot, Principal
from livechat.apikeys import SCOPES
from livechat.protocols.http import NotFoundResource, jsonBody, makeSite
from livechat.websession import (
    SessionError,
    SessionManager,
    SessionSettings,
    mountSessionResources,
)

PANEL_SCOPES = frozenset(SCOPES)
"""What a panel session may do: everything a licence's API key could."""

COOKIE = "lcsp"

ASSETS = {
    # served name: (package folder, file, content type)
    "index.html": ("web/panel", "index.html", "text/html; charset=utf-8"),
    "panel.js": ("web/panel", "panel.js", "application/javascript; charset=utf-8"),
    "panel.css": ("web/panel", "panel.css", "text/css; charset=utf-8"),
    "print.css": ("web/panel", "print.css", "text/css; charset=utf-8"),
    "preview.html": ("web/panel", "preview.html", "text/html; charset=utf-8"),
    "preview.js": ("web/panel", "preview.js", "application/javascript; charset=utf-8"),
    "widget.js": ("web", "widget.js", "application/javascript; charset=utf-8"),
    "widget.css": ("web", "widget.css", "text/css; charset=utf-8"),
}

PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'; object-src 'none'"
)
PREVIEW_POLICY = (
    # the widget adds the licence's custom CSS as a <style> element
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'none'; frame-ancestors 'self'; base-uri 'none'; "
    "form-action 'none'; object-src 'none'"
)


@attr.s(frozen=True, auto_attribs=True)
class Asset:
    body: bytes
    contentType: str
    etag: str


def loadAssets() -> dict[str, Asset]:
    """Read the panel's files (file I/O: off the reactor thread)."""
    found = {}
    root = resources.files("livechat")
    for name, (folder, filename, contentType) in ASSETS.items():
        body = root.joinpath(folder).joinpath(filename).read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        found[name] = Asset(body, contentType, etag)
    return found


def secure(request: server.Request) -> None:
    """Headers every answer of the panel carries."""
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"no-referrer")
    request.setHeader(b"cross-origin-opener-policy", b"same-origin")


class AssetResource(resource.Resource):
    """One file of the panel, revalidated on every use (ETag)."""

    isLeaf = True

    def __init__(
        self,
        assets: PanelAssets,
        name: str,
        policy: str | None = None,
        frames: bytes = b"DENY",
    ) -> None:
        super().__init__()
        self.assets = assets
        self.name = name
        self.policy = policy
        self.frames = frames

    def render_GET(self, request: server.Request) -> bytes:
        secure(request)
        if request.postpath not in ([], [b""]):
            return NotFoundResource().render(request)
        asset = self.assets.files.get(self.name)
        if asset is None:
            return jsonBody(request, 503, {"error": "unavailable", "message": "starting"})
        request.setHeader(b"content-type", asset.contentType.encode())
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"etag", asset.etag.encode())
        if self.policy is not None:
            request.setHeader(b"content-security-policy", self.policy.encode())
            request.setHeader(b"x-frame-options", self.frames)
        if request.getHeader("if-none-match") == asset.etag:
            request.setResponseCode(304)
            return b""
        return asset.body

    render_HEAD = render_GET


class Folder(resource.Resource):
    """Named children; anything else is a JSON 404."""

    def getChild(self, path: bytes, request: server.Request) -> resource.Resource:
        return NotFoundResource()

    def render(self, request: server.Request) -> bytes:
        return NotFoundResource().render(request)


class PanelRoot(Folder):
    """C{/}: the page itself (child C{""}); every answer gets L{secure}'s headers."""

    def __init__(self, assets: PanelAssets) -> None:
        super().__init__()
        self.putChild(b"", AssetResource(assets, "index.html", PAGE_POLICY))

    def getChildWithDefault(self, path: bytes, request: server.Request) -> resource.Resource:
        secure(request)
        return super().getChildWithDefault(path, request)


class PanelAssets:
    """The panel's files, read at start by L{PanelService}."""

    def __init__(self) -> None:
        self.files: dict[str, Asset] = {}


class PanelService(service.Service):
    """Reads the panel's files before its port opens."""

    name = "panel-assets"  # type: ignore[assignment]
    _log = Logger()

    def __init__(self, assets: PanelAssets) -> None:
        self.assets = assets

    def startService(self) -> defer.Deferred[None]:  # type: ignore[override]
        service.Service.startService(self)

        def loaded(files: dict[str, Asset]) -> None:
            self.assets.files = files

        return threads.deferToThread(loadAssets).addCallback(loaded)


def sessionIdentify(manager: SessionManager) -> Any:
    """
    The REST API's way to know who calls (L{ApiResource}'s C{identify}) for
    the panel: the request's panel session (401 without one), with its CSRF
    token on every state-changing method (403 without).
    """

    async def identify(request: server.Request) -> Principal:
        session = await manager.current(request)
        if session is None:
            raise ApiError(401, "unauthorized", "log in to the panel first")
        try:
            manager.requireCsrf(request, session)
        except SessionError as e:
            raise ApiError(e.status, e.code, e.message) from None
        return Principal(session.licence.number, f"panel:{session.idHash[:16]}", PANEL_SCOPES)

    return identify


def panelSettings(config: Any) -> SessionSettings:
    """The panel's session settings: its scope and cookie, administrators only."""
    return SessionSettings.fromConfig(
        config, scope="panel", cookieName=COOKIE, cookiePath="/", adminOnly=True
    )


@attr.s(auto_attribs=True)
class Panel:
    """The pieces of the panel that C{makeService} wires."""

    site: server.Site
    service: PanelService
    api: ApiResource
    manager: SessionManager


def makePanel(parts: Any, manager: SessionManager) -> Panel:
    """The panel's site over a node's parts (no I/O)."""
    from livechat.api import v1

    assets = PanelAssets()
    root = PanelRoot(assets)
    static = Folder()
    for name in ("panel.js", "panel.css", "print.css", "preview.js"):
        static.putChild(name.encode(), AssetResource(assets, name))
    root.putChild(b"static", static)
    preview = Folder()
    preview.putChild(b"", AssetResource(assets, "preview.html", PREVIEW_POLICY, b"SAMEORIGIN"))
    for name in ("widget.js", "widget.css"):
        preview.putChild(name.encode(), AssetResource(assets, name))
    root.putChild(b"preview", preview)
    auth = Folder()
    mountSessionResources(auth, manager)
    root.putChild(b"auth", auth)
    api = v1.makeResource(parts, sessionIdentify(manager))
    api.services["sessions"] = manager
    root.putChild(b"api", ApiRoot(api))
    return Panel(makeSite(root), PanelService(assets), api, manager)
