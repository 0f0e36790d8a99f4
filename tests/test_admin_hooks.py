"""livechat-admin for webhooks: the delivery log, replay, the server secret."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from livechat.storage import hooks
from tests.support.db import DialectMixin, bothDialects
from tests.test_admin import AdminMixin


class _Admin:
    """AdminMixin's helpers without its tests."""

    setUp = AdminMixin.setUp
    admin = AdminMixin.admin
    store = AdminMixin.store


class AdminHooksMixin(_Admin, DialectMixin):
    @defer.inlineCallbacks
    def test_listAndReplay(self) -> Any:
        """list-deliveries shows a dead delivery and its error; replay-deliveries requeues it."""
        yield self.admin("create-licence", "--number", "7")
        store = yield self.store()
        run = lambda f, *a, **k: store.db.runLicence(7, "t", f, *a, **k)  # noqa: E731
        yield run(
            hooks.addDeliveries_txn,
            [
                hooks.DeliveryDraft(
                    endpoint="cfg:CHAT_STARTED",
                    event_key="log:1",
                    event="CHAT_STARTED",
                    chat_id=1,
                    order_key="chat:1",
                    order_no=1,
                    payload={},
                )
            ],
            1000,
        )
        [d] = yield run(hooks.claimDue_txn, "cfg:CHAT_STARTED", 1000, 1, "n", 1000)
        yield run(
            hooks.recordResult_txn, d.id, "n", 2000, state=hooks.DEAD, status=500, error="HTTP 500"
        )
        code, out, err = yield self.admin("list-deliveries", "7", "--state", "dead")
        self.assertEqual((code, err), (0, ""))
        header, row = out.splitlines()
        self.assertEqual(header.split()[:4], ["ID", "ENDPOINT", "EVENT", "STATE"])
        self.assertEqual(
            row.split()[:5], [str(d.id), "cfg:CHAT_STARTED", "CHAT_STARTED", "dead", "1"]
        )
        self.assertIn("HTTP 500", row)
        code, out, _ = yield self.admin("replay-deliveries", "7")
        self.assertEqual(code, 0)
        self.assertTrue(out.startswith("1 deliveries queued again"))
        again = yield run(hooks.getDelivery_txn, d.id)
        self.assertEqual((again.state, again.attempts), (hooks.PENDING, 0))
        code, out, _ = yield self.admin("list-deliveries", "8")
        self.assertEqual(code, 1)

    @defer.inlineCallbacks
    def test_webhookSecret(self) -> Any:
        """webhook-secret makes the server secret once and then shows the same."""
        code, first, _ = yield self.admin("webhook-secret")
        code2, second, _ = yield self.admin("webhook-secret")
        self.assertEqual((code, code2), (0, 0))
        self.assertEqual(first, second)
        self.assertGreaterEqual(len(first.strip()), 32)


globals().update(bothDialects(AdminHooksMixin, "AdminHooksTests"))
