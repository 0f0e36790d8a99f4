"""
L{MemoryBus}: L{IBus} within one process.  A single node needs nothing more;
the Redis bus gives the same behaviour across nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from livechat.interfaces import IBus

Handler = Callable[[dict[str, Any]], None]


class _Subscription:
    def __init__(self, bus: MemoryBus, channel: str, handler: Handler) -> None:
        self._bus = bus
        self.channel = channel
        self.handler = handler

    def unsubscribe(self) -> defer.Deferred[None]:
        self._bus._remove(self)
        return defer.succeed(None)


@implementer(IBus)
class MemoryBus:
    """
    Handlers run synchronously, in subscription order, inside C{publish};
    one failing handler is logged and does not stop the others.
    """

    _log = Logger()

    def __init__(self) -> None:
        self._subscriptions: dict[str, list[_Subscription]] = {}

    def publish(
        self, channel: str, message: dict[str, Any], replay: bool = False
    ) -> defer.Deferred[None]:
        for subscription in list(self._subscriptions.get(channel, ())):
            try:
                subscription.handler(message)
            except Exception:
                self._log.failure("bus handler for {channel} failed", channel=channel)
        return defer.succeed(None)

    def subscribe(self, channel: str, handler: Handler) -> defer.Deferred[_Subscription]:
        subscription = _Subscription(self, channel, handler)
        self._subscriptions.setdefault(channel, []).append(subscription)
        return defer.succeed(subscription)

    def _remove(self, subscription: _Subscription) -> None:
        subscriptions = self._subscriptions.get(subscription.channel)
        if subscriptions and subscription in subscriptions:
            subscriptions.remove(subscription)
            if not subscriptions:
                del self._subscriptions[subscription.channel]

    def channels(self) -> list[str]:
        """The channels with at least one subscriber (for tests and metrics)."""
        return sorted(self._subscriptions)
