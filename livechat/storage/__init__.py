"""Storage: adbapi over sqlite or MariaDB, behind L{livechat.interfaces.IStore}."""

from livechat.storage.errors import Conflict, NotFound, SeatsExhausted
from livechat.storage.store import SqlStore

__all__ = ["SqlStore", "Conflict", "NotFound", "SeatsExhausted"]
