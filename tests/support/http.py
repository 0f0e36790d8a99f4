"""A small HTTP client for tests: no persistent connections left behind."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer, reactor
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers


@defer.inlineCallbacks
def request(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> Any:
    """Fire with C{(code, headers, body bytes)}."""
    import io

    from twisted.web.client import FileBodyProducer

    agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
    producer = FileBodyProducer(io.BytesIO(body)) if body is not None else None
    h = Headers({k.encode(): [v.encode()] for k, v in (headers or {}).items()})
    response = yield agent.request(method.encode(), url.encode(), h, producer)
    data = yield readBody(response)
    return response.code, response.headers, data


@defer.inlineCallbacks
def getJSON(url: str) -> Any:
    """Fire with C{(code, parsed JSON body)}."""
    code, headers, data = yield request("GET", url)
    return code, json.loads(data)
