"""
The janitor: chats that nobody is left to look after.

A node hands an operator's chats back to routing when the operator's last
connection to it has been gone for C{OPERATOR_GRACE} seconds, and withdraws
an offer nobody accepted in time.  Both are timers of the node that holds
the connection or made the offer; when that node dies (or a single node
crashes and restarts) nobody runs them, and the chats would wait forever.

So every C{ORPHAN_SWEEP_INTERVAL} seconds one node of the cluster (a
L{IPresence.lease} per interval) looks at the chats the database says are
offered to or held by an operator:

  - an operator with no live presence (in a cluster: no node refreshes
    their key in Redis, which expires) for C{OPERATOR_GRACE} seconds is
    taken offline and their chats go back to routing, as the operator's
    own node would have done.  L{IPresence.operatorAbsent} hands that to
    exactly one node, and the database's checks (the chat must still be
    theirs) make each chat's hand-back happen once whatever races;
  - an offer older than C{CHAT_ACCEPT_TIMEOUT} plus one interval (its
    node's timer did not fire) is withdrawn and routed again.

While the shared state cannot be reached the janitor does nothing: a node
that cannot see the others must not take their chats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer, task
from twisted.logger import Logger

from livechat.model import Chat, ChatKind, ChatStatus

if TYPE_CHECKING:
    from livechat.core.hub import Core


class Janitor:
    """Periodic sweep for orphaned chats; C{start()} / C{stop()} on the core's clock."""

    _log = Logger()

    def __init__(self, core: Core) -> None:
        self.core = core
        self._loop: task.LoopingCall | None = None
        self._running: defer.Deferred[Any] | None = None

    def start(self) -> None:
        self._loop = task.LoopingCall(self.sweep)
        self._loop.clock = self.core.clock
        self._loop.start(self.core.settings.orphanSweep, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def sweep(self) -> defer.Deferred[Any]:
        """One sweep (never two at once on a node); fires when it is done."""
        if self._running is not None:
            return defer.succeed(None)
        d = self.core.background(self._sweep(), "sweeping orphaned chats")

        def done(result: Any) -> Any:
            self._running = None
            return result

        self._running = d
        return d.addBoth(done)

    async def _sweep(self) -> int:
        """@return: how many operators' chats were handed back."""
        core = self.core
        settings = core.settings
        if not await core.presence.lease("janitor", settings.orphanSweep):
            return 0
        adopted = 0
        for licence in await core.store.listLicences():
            number = licence.number
            store = core.store.forLicence(number)
            held: dict[int, list[Chat]] = {}
            for chat in await store.chatsByStatus([ChatStatus.ASSIGNED, ChatStatus.ACTIVE]):
                if chat.kind is ChatKind.VISITOR and chat.operator is not None:
                    held.setdefault(chat.operator, []).append(chat)
            for operator, chats in sorted(held.items()):
                if await core.presence.operatorAbsent(number, operator, settings.operatorGrace):
                    adopted += 1
                    await core._operatorOrphaned(number, operator)
                    continue
                for chat in chats:
                    if chat.status is ChatStatus.ASSIGNED and self._offerStale(chat):
                        self._log.info(
                            "chat {chat_id} of licence {licence}: the offer to {operator} "
                            "outlived its timer; withdrawing it",
                            chat_id=chat.id,
                            licence=number,
                            operator=operator,
                        )
                        await core._withdraw(number, chat.id, operator, "timeout", chat.assigned_at)
            # An operator without chats whose node died leaves the button online.
            await core._checkLicenceOnline(number)
        return adopted

    def _offerStale(self, chat: Chat) -> bool:
        settings = self.core.settings
        slack = settings.acceptTimeout + settings.orphanSweep
        return self.core._now() >= (chat.assigned_at or 0) + int(slack * 1000)
