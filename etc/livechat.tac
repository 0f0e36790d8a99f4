# livechat as a .tac file, for ops who run `twistd -y etc/livechat.tac`.
# It builds exactly what `twistd livechat` builds.  Settings come from the
# file named by $LIVECHAT_CONFIG (default: /etc/livechat/lc_serv.cfg when it
# exists, else the built-in defaults).
import os

from twisted.application import service
from twisted.internet import reactor

from livechat.config import loadConfig
from livechat.service import makeService

path = os.environ.get("LIVECHAT_CONFIG", "/etc/livechat/lc_serv.cfg")
config = loadConfig(path if os.path.exists(path) else None)

application = service.Application("livechat")
makeService(
    config, reactor, installSignalHandlers=True, exitOnFatal=True, ownsProcess=True
).setServiceParent(application)
