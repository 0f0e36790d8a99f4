"""
The baselines of bench/web.py, each in a process of its own:

    python bench/bare.py web PORT     a bare twisted.web resource (POST -> small JSON)
    python bench/bare.py echo PORT    a raw Autobahn WebSocket echo server
"""

from __future__ import annotations

import sys

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import reactor
from twisted.web import resource, server


class Bare(resource.Resource):
    isLeaf = True

    def render_POST(self, request: server.Request) -> bytes:
        request.content.read()
        request.setHeader(b"content-type", b"application/json")
        return b'{"ok": true}'

    render_GET = render_POST


class Echo(WebSocketServerProtocol):
    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.sendMessage(payload, isBinary)


def main(kind: str, port: int) -> None:
    if kind == "web":
        site = server.Site(Bare())
    else:
        factory = WebSocketServerFactory()
        factory.protocol = Echo
        root = resource.Resource()
        root.putChild(b"ws", WebSocketResource(factory))
        site = server.Site(root)
    site.noisy = False
    reactor.listenTCP(port, site, interface="127.0.0.1", backlog=4096)  # type: ignore[attr-defined]
    print(f"{kind} ready", flush=True)
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
