"""
How fast the webhook worker drains its outbox on this machine:
N OPERATOR_STATUS events of M operators (so M order keys) to a local
receiver, sqlite or MariaDB.

    python bench/webhooks.py [N] [sqlite|mysql://root@127.0.0.1:3306/]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from twisted.internet import defer, task
from twisted.web import resource, server

from livechat.model import Licence
from livechat.notify.webhooks import WebhookService, WebhookSettings
from livechat.storage import SqlStore, hooks


class Count(resource.Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.done: defer.Deferred[None] = defer.Deferred()
        self.want = 0

    def render_POST(self, request: server.Request) -> bytes:
        self.count += 1
        if self.count == self.want:
            self.done.callback(None)
        return b"ok"


async def main(reactor: object, n: int, where: str) -> None:
    if where == "sqlite":
        url = "sqlite:///" + tempfile.mkdtemp().lstrip("/") + "/db_livechat.sqlite3"
    else:
        url = where.rstrip("/") + f"/?prefix=bench{os.getpid()}_"
    store = SqlStore(url, reactor)
    await store.open()
    await store.createLicence(Licence(number=100))
    receiver = Count()
    receiver.want = n
    port = reactor.listenTCP(0, server.Site(receiver), interface="127.0.0.1")  # type: ignore[attr-defined]
    target = f"http://127.0.0.1:{port.getHost().port}/"
    lic = store.forLicence(100)
    for i in range(n):
        await lic.logEvent("OPERATOR_STATUS", {"OPERATOR_ID": f"op{i % 50}@x", "STATUS": i % 6})
    worker = WebhookService(
        store,
        WebhookSettings(
            urls={"OPERATOR_STATUS": target}, secret="s" * 32, concurrency=20, perEndpoint=8
        ),
        reactor,
        sendLicenceInfo=False,
    )
    start = time.monotonic()
    worker.startService()
    await receiver.done
    elapsed = time.monotonic() - start
    await worker.stopService()
    counts = await store.db.runLicence(100, "count", hooks.countDeliveries_txn)
    print(f"{n} events delivered in {elapsed:.2f} s: {n / elapsed:.0f}/s ({where}); {counts}")
    await port.stopListening()
    if where != "sqlite":
        await store.deleteLicence(100)
    await store.close()
    if where != "sqlite":
        from twisted.internet import threads

        from tests.support.db import _dropDatabases

        await threads.deferToThread(_dropDatabases, where, f"bench{os.getpid()}_")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    where = sys.argv[2] if len(sys.argv) > 2 else "sqlite"
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, n, where)))
