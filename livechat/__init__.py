"""livechat: a self-hosted live-chat and contact-centre server on Twisted."""

__version__ = "0.1.0"
