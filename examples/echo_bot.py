"""
An IWCS bot: it takes every chat offered to it and answers each visitor's
message.  A starting point for bots and agent applications built on
livechat.client (see docs/iwcs.md).

    LIVECHAT_PASSWORD=... python examples/echo_bot.py --licence 123456 --nick bot
    python examples/echo_bot.py --licence 123456 --nick bot --password-file bot.pw \\
        --server tls:chat.example.com:13201

The bot logs in as an operator (make one with `livechat-admin create-operator
123456 bot`), sets itself ONLINE so chats are routed to it, and reconnects
by itself (resuming its chats) when the connection drops.  Stop it with
Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from twisted.internet import defer, task
from twisted.internet.endpoints import clientFromString
from twisted.logger import Logger, globalLogBeginner, textFileLogObserver

from livechat.client import IwcsClient, IwcsClientFactory, IwcsClientService, P
from livechat.model import OperatorStatus, Role


class EchoBot(IwcsClient):
    """Accepts every offered chat, greets, and echoes what visitors write."""

    _log = Logger()
    greeting = "Hello! I am a bot: I repeat what you write."

    def loggedInAs(self, welcome: P.Welcome) -> None:
        self._log.info(
            "logged in as {nick} (licence {licence}); following chats {chats}",
            nick=welcome.nick,
            licence=welcome.licence,
            chats=list(welcome.chats or ()),
        )

    def chatRequested(self, offer: P.ChatOffered) -> None:
        self._log.info(
            "chat {chat} offered (visitor {visitor})", chat=offer.chat, visitor=offer.visitor
        )
        d = self.accept(offer.chat)
        d.addCallback(lambda _: self.send(offer.chat, self.greeting))
        d.addErrback(self._failed, "accepting chat", offer.chat)

    def messageReceived(self, message: P.MessageEvent) -> None:
        if message.role is not Role.CONSUMER:
            return  # our own messages, and colleagues'
        d = self.markRead(message.chat, [message.seq]) if message.seq else defer.succeed(None)
        d.addCallback(lambda _: self.send(message.chat, f"You said: {message.text}"))
        d.addErrback(self._failed, "answering in chat", message.chat)

    def chatClosed(self, close: P.CloseEvent) -> None:
        self._log.info("chat {chat} closed ({reason})", chat=close.chat, reason=close.reason)

    def _failed(self, failure: Any, what: str, chat: int) -> None:
        self._log.warn("{what} {chat}: {error}", what=what, chat=chat, error=failure.value)


def parseArgs(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="An IWCS bot that answers visitors.")
    parser.add_argument("--server", default="tcp:127.0.0.1:13201", help="client endpoint")
    parser.add_argument("--licence", type=int, required=True)
    parser.add_argument("--nick", required=True)
    parser.add_argument(
        "--password-file", help="file holding the password (default: $LIVECHAT_PASSWORD)"
    )
    return parser.parse_args(argv)


async def run(reactor: Any, argv: list[str]) -> None:
    args = parseArgs(argv)
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as f:
            password = f.read().strip()
    else:
        password = os.environ.get("LIVECHAT_PASSWORD", "")
    if not password:
        raise SystemExit("give the password with --password-file or $LIVECHAT_PASSWORD")
    factory = IwcsClientFactory(
        args.licence,
        nick=args.nick,
        password=password,
        status=OperatorStatus.ONLINE,
        protocol=EchoBot,
        clock=reactor,
        clientName="echo_bot",
    )
    service = IwcsClientService(clientFromString(reactor, args.server), factory, clock=reactor)
    service.startService()
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    await service.whenLoggedIn()
    forever: defer.Deferred[None] = defer.Deferred()
    await forever


def main() -> None:
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    task.react(lambda reactor: defer.ensureDeferred(run(reactor, sys.argv[1:])))


if __name__ == "__main__":
    main()
