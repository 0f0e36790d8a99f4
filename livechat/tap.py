"""
Command-line options of ``twistd livechat``; they override ``lc_serv.cfg``.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.python import usage

from livechat.config import KEYS, Config, ConfigError, loadConfig
from livechat.service import LivechatService
from livechat.service import makeService as _makeService
from livechat.websession import checkSessionSecret

DEFAULT_CONFIG = "lc_serv.cfg"


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run a livechat node. Settings come from lc_serv.cfg (--config; "
        "./lc_serv.cfg when present), then from these options. Every key of "
        "the file can also be given as --set KEY=VALUE. See etc/lc_serv.cfg "
        "for the keys and their defaults."
    )

    optParameters = [
        ["config", "c", None, "Configuration file (lc_serv.cfg)."],
        ["data-dir", "d", None, "Data directory (DATA_DIR)."],
        [
            "http",
            None,
            None,
            "Public HTTP endpoint (HTTP_LISTEN), e.g. tcp:13200:interface=127.0.0.1.",
        ],
        ["iwcs", None, None, "IWCS endpoint (IWCS_LISTEN), or none."],
        ["panel", None, None, "Control panel endpoint (PANEL_LISTEN), or none."],
        [
            "database",
            None,
            None,
            "Database URL (DATABASE): sqlite:///path or mysql://user:pass@host:port/.",
        ],
        ["redis", None, None, "Redis URL (REDIS); empty for a single node."],
    ]

    optFlags = [
        [
            "dev",
            None,
            "Development mode (DEV_MODE 1): an empty or weak SESSION_SECRET is replaced "
            "by a random one per process. Never in production.",
        ],
    ]

    _OPTION_KEYS = {
        "data-dir": "DATA_DIR",
        "http": "HTTP_LISTEN",
        "iwcs": "IWCS_LISTEN",
        "panel": "PANEL_LISTEN",
        "database": "DATABASE",
        "redis": "REDIS",
    }

    def __init__(self) -> None:
        super().__init__()
        self.overrides: dict[str, str] = {}
        self.config: Config | None = None

    def opt_set(self, assignment: str) -> None:
        """Set any configuration key: --set KEY=VALUE (repeatable)."""
        key, sep, value = assignment.partition("=")
        key = key.strip().upper()
        if not sep:
            raise usage.UsageError(f"--set wants KEY=VALUE, got {assignment!r}")
        if key not in KEYS:
            raise usage.UsageError(f"--set: unknown key {key}")
        self.overrides[key] = value

    def postOptions(self) -> None:
        for option, key in self._OPTION_KEYS.items():
            if self[option] is not None:
                self.overrides[key] = self[option]
        if self["dev"]:
            self.overrides["DEV_MODE"] = "1"
        path = self["config"]
        if path is None and os.path.exists(DEFAULT_CONFIG):
            path = DEFAULT_CONFIG
        try:
            self.config = loadConfig(path, self.overrides)
            checkSessionSecret(self.config)
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None


def makeService(options: Options, reactor: Any) -> LivechatService:
    assert options.config is not None
    return _makeService(
        options.config, reactor, installSignalHandlers=True, exitOnFatal=True, ownsProcess=True
    )
