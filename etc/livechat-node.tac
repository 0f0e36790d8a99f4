# One node of a livechat cluster, for `twistd -y etc/livechat-node.tac`.
# Every node runs the same code and the same configuration file (DATABASE on
# MariaDB, REDIS set); what differs per node comes from the environment:
#
#   LIVECHAT_CONFIG    the shared lc_serv.cfg (default /etc/livechat/lc_serv.cfg)
#   LIVECHAT_HTTP      this node's HTTP endpoint, e.g. tcp:13200:interface=10.0.0.11
#   LIVECHAT_IWCS      this node's IWCS endpoint, e.g. tcp:13201:interface=10.0.0.11
#   LIVECHAT_PANEL     this node's control panel endpoint (or none)
#   LIVECHAT_DATA_DIR  this node's data directory
#
# e.g.  LIVECHAT_HTTP=tcp:13210 LIVECHAT_IWCS=tcp:13211 LIVECHAT_PANEL=none \
#       LIVECHAT_DATA_DIR=/var/lib/livechat/node1 \
#       twistd --pidfile node1.pid -l node1.log -y etc/livechat-node.tac
import os

from twisted.application import service
from twisted.internet import reactor

from livechat.config import loadConfig
from livechat.service import makeService

path = os.environ.get("LIVECHAT_CONFIG", "/etc/livechat/lc_serv.cfg")
overrides = {
    key: os.environ[variable]
    for key, variable in (
        ("HTTP_LISTEN", "LIVECHAT_HTTP"),
        ("IWCS_LISTEN", "LIVECHAT_IWCS"),
        ("PANEL_LISTEN", "LIVECHAT_PANEL"),
        ("DATA_DIR", "LIVECHAT_DATA_DIR"),
    )
    if os.environ.get(variable)
}
config = loadConfig(path if os.path.exists(path) else None, overrides)
if not config["REDIS"]:
    raise SystemExit("livechat-node.tac: REDIS is not set; a cluster node needs it")

application = service.Application("livechat")
makeService(
    config, reactor, installSignalHandlers=True, exitOnFatal=True, ownsProcess=True
).setServiceParent(application)
