"""
The delivery tables on both dialects: claims are exclusive between nodes,
a chat's deliveries come out in order, replay, purge, password scrubbing,
cursors, webhooks and apps, subscriptions.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from livechat.model import AccountType, Licence
from livechat.storage import hooks, subscriptions
from livechat.storage.errors import NotFound
from tests.support.db import DialectMixin, bothDialects


def draft(
    n: int, order_key: str = "chat:1", endpoint: str = "hook:1", **kw: Any
) -> hooks.DeliveryDraft:
    return hooks.DeliveryDraft(
        endpoint=endpoint,
        event_key=f"log:{n}",
        event=kw.pop("event", "CHAT_STARTED"),
        chat_id=1,
        order_key=order_key,
        order_no=n,
        payload=kw.pop("payload", {"fields": {"N": n}}),
    )


class HookStorageMixin(DialectMixin):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.store = yield self.openStore()
        yield self.store.createLicence(Licence(number=100))
        self.run = lambda desc, f, *a, **k: self.store.db.runLicence(100, desc, f, *a, **k)

    @defer.inlineCallbacks
    def test_addIsIdempotent(self) -> Any:
        """The same (endpoint, event) twice makes one delivery."""
        added = yield self.run("add", hooks.addDeliveries_txn, [draft(1), draft(1), draft(2)], 1000)
        self.assertEqual(added, 2)
        again = yield self.run("add", hooks.addDeliveries_txn, [draft(1)], 2000)
        self.assertEqual(again, 0)

    @defer.inlineCallbacks
    def test_claimsAreExclusiveAndOrdered(self) -> Any:
        """
        Two nodes claiming at once never get the same delivery; of one
        order key only the oldest pending comes out; other keys do not wait.
        """
        yield self.run(
            "add",
            hooks.addDeliveries_txn,
            [draft(1), draft(2), draft(3, order_key="chat:2")],
            1000,
        )
        a, b = yield defer.gatherResults(
            [
                self.run("claim", hooks.claimDue_txn, "hook:1", 1000, 10, "node-a", 60000),
                self.run("claim", hooks.claimDue_txn, "hook:1", 1000, 10, "node-b", 60000),
            ]
        )
        ids = [d.id for d in a] + [d.id for d in b]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual(sorted(d.order_no for d in a + b), [1, 3])
        first = next(d for d in a + b if d.order_no == 1)
        owner = "node-a" if first in a else "node-b"
        again = yield self.run("claim", hooks.claimDue_txn, "hook:1", 1000, 10, "node-c", 60000)
        self.assertEqual(again, [])
        ok = yield self.run(
            "record",
            hooks.recordResult_txn,
            first.id,
            "node-c",
            1100,
            state=hooks.DELIVERED,
            status=200,
            error="",
        )
        self.assertFalse(ok)
        ok = yield self.run(
            "record",
            hooks.recordResult_txn,
            first.id,
            owner,
            1100,
            state=hooks.DELIVERED,
            status=200,
            error="",
        )
        self.assertTrue(ok)
        nxt = yield self.run("claim", hooks.claimDue_txn, "hook:1", 1200, 10, "node-c", 60000)
        self.assertEqual([d.order_no for d in nxt], [2])

    @defer.inlineCallbacks
    def test_leaseLapses(self) -> Any:
        """A claim of a node that died lapses after its lease; another node takes it."""
        yield self.run("add", hooks.addDeliveries_txn, [draft(1)], 1000)
        [d] = yield self.run("claim", hooks.claimDue_txn, "hook:1", 1000, 10, "dead-node", 5000)
        self.assertEqual(
            (yield self.run("claim", hooks.claimDue_txn, "hook:1", 5999, 10, "live", 5000)), []
        )
        [again] = yield self.run("claim", hooks.claimDue_txn, "hook:1", 6001, 10, "live", 5000)
        self.assertEqual(again.id, d.id)

    @defer.inlineCallbacks
    def test_retryDeadReplayPurge(self) -> Any:
        """A retry waits for next_at; dead can be replayed; old finished ones are purged."""
        yield self.run("add", hooks.addDeliveries_txn, [draft(1), draft(2, order_key="x")], 1000)
        [d1, d2] = yield self.run("claim", hooks.claimDue_txn, "hook:1", 1000, 10, "n", 60000)
        yield self.run(
            "record",
            hooks.recordResult_txn,
            d1.id,
            "n",
            1000,
            state=hooks.PENDING,
            status=503,
            error="HTTP 503",
            nextAt=5000,
        )
        yield self.run(
            "record",
            hooks.recordResult_txn,
            d2.id,
            "n",
            1000,
            state=hooks.DEAD,
            status=500,
            error="HTTP 500",
        )
        self.assertEqual(
            (yield self.run("claim", hooks.claimDue_txn, "hook:1", 4999, 10, "n", 1)), []
        )
        self.assertEqual((yield self.run("next", hooks.nextDue_txn, 1000)), 5000)
        dead = yield self.run("list", hooks.listDeliveries_txn, state=hooks.DEAD)
        self.assertEqual([(d.id, d.last_error, d.attempts) for d in dead], [(d2.id, "HTTP 500", 1)])
        count = yield self.run("replay", hooks.replay_txn, 9000)
        self.assertEqual(count, 1)
        again = yield self.run("get", hooks.getDelivery_txn, d2.id)
        self.assertEqual((again.state, again.attempts, again.retry_from), (hooks.PENDING, 0, 9000))
        yield self.assertFailure(
            self.run("replay", hooks.replay_txn, 9000, deliveryId=999), NotFound
        )
        claimed = yield self.run("claim", hooks.claimDue_txn, "hook:1", 9000, 10, "n", 1)
        self.assertEqual(sorted(d.id for d in claimed), [d1.id, d2.id])
        d2b = next(d for d in claimed if d.id == d2.id)
        yield self.run(
            "record",
            hooks.recordResult_txn,
            d2b.id,
            "n",
            9000,
            state=hooks.DELIVERED,
            status=200,
            error="",
        )
        self.assertEqual((yield self.run("purge", hooks.purge_txn, 8000)), 0)
        self.assertEqual((yield self.run("purge", hooks.purge_txn, 9001)), 1)
        counts = yield self.run("count", hooks.countDeliveries_txn)
        self.assertEqual(counts, {"pending": 1, "delivered": 0, "dead": 0})

    @defer.inlineCallbacks
    def test_passwordScrubbed(self) -> Any:
        """A delivery done with keeps no PASSWORD in its payload."""
        yield self.run(
            "add",
            hooks.addDeliveries_txn,
            [draft(1, payload={"fields": {"PASSWORD": "pw", "NICK": "a"}})],
            1000,
        )
        [d] = yield self.run("claim", hooks.claimDue_txn, "hook:1", 1000, 10, "n", 60000)
        self.assertEqual(d.payload["fields"]["PASSWORD"], "pw")
        yield self.run(
            "record",
            hooks.recordResult_txn,
            d.id,
            "n",
            1000,
            state=hooks.DELIVERED,
            status=200,
            error="",
        )
        done = yield self.run("get", hooks.getDelivery_txn, d.id)
        self.assertEqual(done.payload, {"fields": {"NICK": "a"}})

    @defer.inlineCallbacks
    def test_cursorsMoveForwardOnly(self) -> Any:
        """A cursor never moves back (two nodes may race)."""
        self.assertEqual((yield self.run("get", hooks.getCursor_txn, "log")), 0)
        yield self.run("set", hooks.setCursor_txn, "log", 5)
        yield self.run("set", hooks.setCursor_txn, "log", 3)
        self.assertEqual((yield self.run("get", hooks.getCursor_txn, "log")), 5)

    @defer.inlineCallbacks
    def test_webhooksAndApps(self) -> Any:
        """Webhooks and apps are stored and changed; removing one drops its pending deliveries."""
        hook = yield self.run(
            "create", hooks.createWebhook_txn, "*", "https://x.example/", "GET", True, 1
        )
        app = yield self.run(
            "create",
            hooks.createApp_txn,
            {
                "name": "A",
                "endpoints": {"ContentEvent": "https://x.example/c"},
                "headers": {"X-K": "v"},
            },
            1,
        )
        self.assertEqual(
            (app["endpoints"], app["headers"], app["enabled"]),
            ({"ContentEvent": "https://x.example/c"}, {"X-K": "v"}, True),
        )
        app = yield self.run("update", hooks.updateApp_txn, app["id"], {"enabled": False}, 2)
        self.assertFalse(app["enabled"])
        yield self.run("add", hooks.addDeliveries_txn, [draft(1, endpoint=f"hook:{hook['id']}")], 1)
        yield self.run("delete", hooks.deleteWebhook_txn, hook["id"])
        self.assertEqual((yield self.run("list", hooks.listDeliveries_txn)), [])
        yield self.assertFailure(self.run("delete", hooks.deleteApp_txn, 999), NotFound)

    @defer.inlineCallbacks
    def test_subscriptions(self) -> Any:
        """Running subscriptions sum their seats; outside their dates there are none."""
        db = self.store.db
        yield db.runGlobal(
            "sub",
            subscriptions.createSubscription_txn,
            100,
            3,
            1,
            1000,
            5000,
            "card",
            "9.00",
            "23",
            1,
        )
        yield db.runGlobal(
            "sub", subscriptions.createSubscription_txn, 100, 2, 0, 2000, 3000, "", "", "", 1
        )
        seats = yield self.store.subscribedSeats(100, 2500)
        self.assertEqual(seats, {AccountType.CONTACT_CENTER: 5, AccountType.COMMUNICATOR: 1})
        self.assertIsNone((yield self.store.subscribedSeats(100, 6000)))
        events = yield self.store.accountEvents(100)
        self.assertEqual([e[2] for e in events][-2:], ["NEW_OPERATOR_SUBSCRIPTION"] * 2)


globals().update(bothDialects(HookStorageMixin, "HookStorageTests"))
