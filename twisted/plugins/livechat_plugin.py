"""
The ``twistd livechat`` plugin.  This file only points twistd at
L{livechat.tap}; importing it must stay cheap, because ``twistd --help``
imports every plugin.  (There is no ``__init__.py`` in twisted/plugins, on
purpose: Twisted's plugin system needs it that way.)
"""

from typing import Any

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IServiceMaker, IPlugin)
class LivechatServiceMaker:
    tapname = "livechat"
    description = "Live chat and contact-centre server (see `twistd livechat --help`)."

    @property
    def options(self) -> Any:
        from livechat.tap import Options

        return Options

    def makeService(self, options: Any) -> Any:
        # The composition root: the one place that hands the global reactor in.
        from twisted.internet import reactor

        from livechat.tap import makeService

        return makeService(options, reactor)


livechat = LivechatServiceMaker()
