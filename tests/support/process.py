"""
Run a real ``twistd livechat`` (or any command) as a child process and wait
for what it prints, event by event: no sleeping, no polling.

    node = ServerProcess.twistd(self, ["-n", "livechat", "--http", "tcp:0"])
    url = yield node.waitFor(r"listening on (http://\\S+)")
    node.signal("HUP")
    yield node.waitFor(r"SIGHUP: ")
    code = yield node.stop()
"""

from __future__ import annotations

import os
import re
import signal
import sys
from typing import Any

from twisted.internet import defer, error, protocol, reactor
from twisted.trial import unittest

DEFAULT_TIMEOUT = 60.0


class _Watcher(protocol.ProcessProtocol):
    def __init__(self) -> None:
        self.output = ""
        self.waiting: list[tuple[re.Pattern[str], int, defer.Deferred[re.Match[str]]]] = []
        self.ended: defer.Deferred[int] = defer.Deferred()
        self.exitCode: int | None = None

    def outReceived(self, data: bytes) -> None:
        self.output += data.decode("utf-8", "replace")
        self._check()

    errReceived = outReceived

    def _check(self) -> None:
        still = []
        for pattern, start, d in self.waiting:
            match = pattern.search(self.output, start)
            if match is not None:
                d.callback(match)
            else:
                still.append((pattern, start, d))
        self.waiting = still

    def processEnded(self, reason: Any) -> None:
        value = reason.value
        self.exitCode = getattr(value, "exitCode", None)
        if self.exitCode is None and getattr(value, "signal", None) is not None:
            self.exitCode = -value.signal
        waiting, self.waiting = self.waiting, []
        for pattern, _, d in waiting:
            d.errback(
                AssertionError(
                    f"process ended ({self.exitCode}) before printing "
                    f"{pattern.pattern!r}; its output:\n{self.output[-4000:]}"
                )
            )
        self.ended.callback(self.exitCode if self.exitCode is not None else 0)


class ServerProcess:
    """A child process whose output a test can wait on."""

    def __init__(self, watcher: _Watcher, transport: Any) -> None:
        self._watcher = watcher
        self.transport = transport
        self._mark = 0

    @classmethod
    def spawn(
        cls,
        testcase: unittest.TestCase,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        path: str | None = None,
        stdin: bytes | None = None,
    ) -> ServerProcess:
        """Start C{argv}; the test's cleanup kills it if it still runs."""
        watcher = _Watcher()
        environment = dict(os.environ)
        environment.update(env or {})
        transport = reactor.spawnProcess(watcher, argv[0], argv, env=environment, path=path)
        if stdin is not None:
            transport.write(stdin)
            transport.closeStdin()
        process = cls(watcher, transport)
        testcase.addCleanup(process.kill)
        return process

    @classmethod
    def twistd(cls, testcase: unittest.TestCase, args: list[str], **kw: Any) -> ServerProcess:
        """Run C{twistd <args>} with this test's Python."""
        boot = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
        return cls.spawn(testcase, [sys.executable, "-c", boot, *args], **kw)

    @property
    def output(self) -> str:
        return self._watcher.output

    def waitFor(
        self, pattern: str, timeout: float = DEFAULT_TIMEOUT
    ) -> defer.Deferred[re.Match[str]]:
        """
        Fire with the first match of C{pattern} in output printed after the
        previous C{waitFor} match (or at all, the first time).
        """
        compiled = re.compile(pattern)
        match = compiled.search(self._watcher.output, self._mark)
        if match is not None:
            self._mark = match.end()
            return defer.succeed(match)
        if self._watcher.exitCode is not None or self._watcher.ended.called:
            return defer.fail(
                AssertionError(
                    f"process has ended; never printed {pattern!r}:\n{self.output[-4000:]}"
                )
            )
        d: defer.Deferred[re.Match[str]] = defer.Deferred()
        self._watcher.waiting.append((compiled, self._mark, d))

        def advance(m: re.Match[str]) -> re.Match[str]:
            self._mark = max(self._mark, m.end())
            return m

        d.addCallback(advance)
        d.addTimeout(timeout, reactor, onTimeoutCancel=lambda *_: self._timedOut(pattern))
        return d

    def _timedOut(self, pattern: str) -> None:
        raise AssertionError(
            f"no {pattern!r} within the timeout; output so far:\n{self.output[-4000:]}"
        )

    def signal(self, name: str) -> None:
        self.transport.signalProcess(name)

    def ended(self) -> defer.Deferred[int]:
        """Fires with the exit code (negative signal number if killed)."""
        if self._watcher.ended.called:
            return defer.succeed(self._watcher.exitCode or 0)
        d: defer.Deferred[int] = defer.Deferred()
        self._watcher.ended.addBoth(lambda r: (d.callback(r), r)[1])
        return d

    def stop(self, timeout: float = DEFAULT_TIMEOUT) -> defer.Deferred[int]:
        """SIGTERM, then fire with the exit code."""
        if not self._watcher.ended.called:
            try:
                self.signal("TERM")
            except error.ProcessExitedAlready:
                pass
        d = self.ended()
        d.addTimeout(timeout, reactor)
        return d

    def kill(self) -> defer.Deferred[int]:
        if not self._watcher.ended.called:
            try:
                self.transport.signalProcess(signal.SIGKILL)
            except error.ProcessExitedAlready:
                pass
        return self.ended()
