"""
The one event vocabulary, the same on every wire.

A chat event, as every participant receives it::

    {"type": "chat.event", "licence": 123456, "chatId": 42, "sequence": 7,
     "serverTimestamp": 1795316832824, "originatorId": "op:12",
     "originatorMetadata": {"id": "op:12", "role": "ASSIGNED_AGENT", "name": "Anna"},
     "event": {"type": "ContentEvent", "contentType": "text/plain", "message": "Hi"}}

The inner C{event} is one of the connector API's events (ContentEvent,
ChatStateEvent, AcceptStatusEvent) or a chat-lifecycle event of ours
(JoinEvent, LeaveEvent, TransferEvent, InviteEvent, CloseEvent).  Every
event but ChatStateEvent is stored and carries the chat's next C{sequence}.

Other messages (not chat events) have their own C{type}: C{chat.offered},
C{chat.withdrawn}, C{chat.queue}, C{chat.opened}, C{visitor.update},
C{visitor.gone}, C{operator.status}, C{licence.status}, C{invitation},
C{invitation.answered}, C{conference.invited}.  docs/events.md lists them
all with examples.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from livechat.model import AcceptStatus, ChatState
from livechat.storage.chats import StoredEvent

CONTENT = "ContentEvent"
CHAT_STATE = "ChatStateEvent"
ACCEPT_STATUS = "AcceptStatusEvent"
JOIN = "JoinEvent"
LEAVE = "LeaveEvent"
TRANSFER = "TransferEvent"
INVITE = "InviteEvent"
CLOSE = "CloseEvent"

STORED_TYPES = (CONTENT, ACCEPT_STATUS, JOIN, LEAVE, TRANSFER, INVITE, CLOSE)


def content(message: str, contentType: str = "text/plain") -> dict[str, Any]:
    return {"type": CONTENT, "contentType": contentType, "message": message}


def chatState(state: ChatState) -> dict[str, Any]:
    return {"type": CHAT_STATE, "chatState": state.value}


def acceptStatus(status: AcceptStatus, sequences: Iterable[int]) -> dict[str, Any]:
    return {"type": ACCEPT_STATUS, "status": status.value, "sequenceList": sorted(set(sequences))}


def participant(ref: str, role: str, name: str) -> dict[str, Any]:
    return {"id": ref, "role": role, "name": name}


def join(ref: str, role: str, name: str) -> dict[str, Any]:
    return {"type": JOIN, "participant": participant(ref, role, name)}


def leave(ref: str, role: str, name: str, reason: str) -> dict[str, Any]:
    return {"type": LEAVE, "participant": participant(ref, role, name), "reason": reason}


def transfer(
    by: dict[str, Any], status: int, toOperator: dict[str, Any] | None, toGroup: int | None
) -> dict[str, Any]:
    """C{status} is the transferring operator's status (the seed's STATUS)."""
    return {
        "type": TRANSFER,
        "from": by,
        "status": status,
        "toOperator": toOperator,
        "toGroup": toGroup,
    }


def invite(invited: dict[str, Any]) -> dict[str, Any]:
    return {"type": INVITE, "invited": invited}


def close(reason: str) -> dict[str, Any]:
    return {"type": CLOSE, "reason": reason}


def wire(licence: int, stored: StoredEvent) -> dict[str, Any]:
    """The message participants receive for a stored event."""
    return {
        "type": "chat.event",
        "licence": licence,
        "chatId": stored.chat_id,
        "sequence": stored.seq,
        "serverTimestamp": stored.created_at,
        "originatorId": stored.originator,
        "originatorMetadata": participant(stored.originator, stored.role, stored.name),
        "event": stored.event,
    }


def wireState(
    licence: int, chatId: int, ref: str, role: str, name: str, state: ChatState, nowMS: int
) -> dict[str, Any]:
    """The message for a chat-state event: no sequence, not stored."""
    return {
        "type": "chat.event",
        "licence": licence,
        "chatId": chatId,
        "serverTimestamp": nowMS,
        "originatorId": ref,
        "originatorMetadata": participant(ref, role, name),
        "event": chatState(state),
    }
