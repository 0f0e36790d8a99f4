"""
The seed's per-channel log files.

With C{LC_LOG_PATH} set, each of C{LOG_PACKETS}, C{LOG_EVENTS},
C{LOG_SOCKETS}, C{LOG_SCRIPT} and C{LOG_CONTROL} switches on its own file in
that directory: C{packets20261122.log}, C{events20261122.log},
C{sockets20261122.log}, C{lc_script20261122.log}, C{control20261122.log}
(a new file each day), or without the date when C{LOG_NAME_SHORT 1}, which
suits logrotate: after it moves a file, C{kill -HUP} reopens it.

The channels do not go to the main log; the main log is twisted.logger's,
run by twistd.  Code that logs to a channel asks L{ChannelLogs.enabled}
first, so a switched-off channel costs nothing.
"""

from __future__ import annotations

import os
import time
from typing import IO, Any

from twisted.logger import Logger, formatEvent

CHANNELS = {
    # channel: (config key, file name stem)
    "packets": ("LOG_PACKETS", "packets"),
    "events": ("LOG_EVENTS", "events"),
    "sockets": ("LOG_SOCKETS", "sockets"),
    "script": ("LOG_SCRIPT", "lc_script"),
    "control": ("LOG_CONTROL", "control"),
}


class _ChannelFile:
    """One channel's file: opened lazily, renamed by day unless short names."""

    def __init__(self, directory: str, stem: str, short: bool, clock: Any) -> None:
        self.directory = directory
        self.stem = stem
        self.short = short
        self._clock = clock
        self._file: IO[str] | None = None
        self._day = ""

    def fileName(self, now: float) -> str:
        if self.short:
            return f"{self.stem}.log"
        return f"{self.stem}{time.strftime('%Y%m%d', time.localtime(now))}.log"

    def write(self, line: str) -> None:
        now = self._clock.seconds()
        name = self.fileName(now)
        if self._file is None or name != self._day:
            self.close()
            self._file = open(
                os.path.join(self.directory, name), "a", encoding="utf-8", errors="replace"
            )
            self._day = name
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        self._file.write(f"{stamp}.{int(now * 1000) % 1000:03d} {line}\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None


class ChannelLogs:
    """
    The five channel logs.  C{configure()} applies a L{livechat.config.Config}
    (at start and on SIGHUP); C{write()} appends a line to a channel that is
    on; C{reopen()} closes the files so the next line opens them afresh.
    """

    _log = Logger()

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._files: dict[str, _ChannelFile] = {}
        self._on: frozenset[str] = frozenset()

    def configure(self, config: Any) -> None:
        path = config["LC_LOG_PATH"]
        short = config["LOG_NAME_SHORT"]
        on = frozenset(channel for channel, (key, _) in CHANNELS.items() if path and config[key])
        self.closeAll()
        self._files = {
            channel: _ChannelFile(path, CHANNELS[channel][1], short, self._clock) for channel in on
        }
        if on:
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as e:
                self._log.error("cannot create LC_LOG_PATH {path}: {error}", path=path, error=e)
                self._files = {}
                on = frozenset()
        self._on = on

    def enabled(self, channel: str) -> bool:
        return channel in self._on

    def write(self, channel: str, format: str, **fields: Any) -> None:
        """Append one line (a twisted.logger format string) to C{channel}, if on."""
        target = self._files.get(channel)
        if target is None:
            return
        line = formatEvent({"log_format": format, **fields})
        try:
            target.write(line.replace("\n", "\\n"))
        except OSError as e:
            self._log.error(
                "cannot write the {channel} log: {error}; switching it off",
                channel=channel,
                error=e,
            )
            self._files.pop(channel, None)
            self._on = self._on - {channel}

    def reopen(self) -> None:
        """Close every file; the next line reopens it (after logrotate moved it)."""
        for target in self._files.values():
            target.close()

    def closeAll(self) -> None:
        self.reopen()

    def fileNames(self) -> dict[str, str]:
        """Where each switched-on channel writes now."""
        now = self._clock.seconds()
        return {
            channel: os.path.join(f.directory, f.fileName(now))
            for channel, f in self._files.items()
        }
