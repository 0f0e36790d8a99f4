"""The seed's channel log files (packets, events, sockets, lc_script, control)."""

from __future__ import annotations

import os
import time

from twisted.internet import task
from twisted.trial import unittest

from livechat.config import buildConfig
from livechat.logs import CHANNELS, ChannelLogs


def config(**values: str):  # type: ignore[no-untyped-def]
    return buildConfig({}, values, None)


class ChannelLogTests(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        self.clock = task.Clock()
        # Noon, local time, on a fixed day.
        self.clock.advance(time.mktime((2026, 11, 22, 12, 0, 0, 0, 0, -1)))
        self.logs = ChannelLogs(self.clock)
        self.addCleanup(self.logs.closeAll)

    def read(self, name: str) -> str:
        with open(os.path.join(self.dir, name), encoding="utf-8") as f:
            return f.read()

    def test_offWithoutPath(self) -> None:
        """Without LC_LOG_PATH no channel is on, whatever the flags say."""
        self.logs.configure(config(LOG_PACKETS="1"))
        self.assertFalse(self.logs.enabled("packets"))
        self.logs.write("packets", "x")
        self.assertFalse(os.path.exists(self.dir))

    def test_eachFlagItsFile(self) -> None:
        """Each LOG_* flag switches on exactly its own file, named with the date."""
        for channel, (key, stem) in CHANNELS.items():
            logs = ChannelLogs(self.clock)
            self.addCleanup(logs.closeAll)
            logs.configure(config(LC_LOG_PATH=self.dir, **{key: "1"}))
            self.assertEqual([c for c in CHANNELS if logs.enabled(c)], [channel])
            for other in CHANNELS:
                logs.write(other, "line of {c}", c=other)
            self.assertEqual(self.read(f"{stem}20261122.log").count("line of"), 1)
            self.assertIn(f"line of {channel}", self.read(f"{stem}20261122.log"))
        self.assertEqual(
            sorted(os.listdir(self.dir)),
            sorted(f"{stem}20261122.log" for _, stem in CHANNELS.values()),
        )

    def test_newFileEachDay(self) -> None:
        """Dated names roll over at midnight."""
        self.logs.configure(config(LC_LOG_PATH=self.dir, LOG_EVENTS="1"))
        self.logs.write("events", "before")
        self.clock.advance(13 * 3600)
        self.logs.write("events", "after")
        self.assertIn("before", self.read("events20261122.log"))
        self.assertNotIn("after", self.read("events20261122.log"))
        self.assertIn("after", self.read("events20261123.log"))

    def test_shortNames(self) -> None:
        """LOG_NAME_SHORT 1: no date in the name, and reopen() follows a rotation."""
        self.logs.configure(config(LC_LOG_PATH=self.dir, LOG_NAME_SHORT="1", LOG_SOCKETS="1"))
        self.logs.write("sockets", "one")
        os.rename(os.path.join(self.dir, "sockets.log"), os.path.join(self.dir, "sockets.log.1"))
        self.logs.write("sockets", "two")  # still the moved file
        self.logs.reopen()
        self.logs.write("sockets", "three")
        self.assertEqual(self.read("sockets.log.1").split("\n")[0][-3:], "one")
        self.assertIn("two", self.read("sockets.log.1"))
        self.assertNotIn("one", self.read("sockets.log"))
        self.assertIn("three", self.read("sockets.log"))

    def test_linesAreOneLine(self) -> None:
        """A value with a newline cannot forge a second log line."""
        self.logs.configure(config(LC_LOG_PATH=self.dir, LOG_NAME_SHORT="1", LOG_PACKETS="1"))
        self.logs.write("packets", "{data}", data="a\n2026-01-01 fake")
        self.assertEqual(self.read("packets.log").count("\n"), 1)

    def test_unwritableDirectory(self) -> None:
        """An LC_LOG_PATH that cannot be created switches the channels off, no crash."""
        blocker = os.path.abspath(self.mktemp())
        with open(blocker, "w") as f:
            f.write("a file, not a directory")
        self.logs.configure(config(LC_LOG_PATH=os.path.join(blocker, "logs"), LOG_PACKETS="1"))
        self.assertFalse(self.logs.enabled("packets"))
        self.logs.write("packets", "nothing")
        self.flushLoggedErrors()
