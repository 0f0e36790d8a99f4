"""
The extension points of livechat (see DESIGN.md).  Each has at least two
implementations or a test double the tests use; every method says what its
Deferred fires with.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IStore(Interface):
    """
    Storage of the global database (the seed's C{db_livechat}): licences,
    operators, API keys, and the way to each licence's own data.

    Errors: L{livechat.storage.errors.NotFound} when a named licence or
    operator does not exist, L{livechat.storage.errors.Conflict} when a
    unique name is taken, L{livechat.storage.errors.SeatsExhausted} when an
    operator would exceed the licence's seats.
    """

    dialect = Attribute("C{'sqlite'} or C{'mysql'}.")

    def open():
        """
        Create the global database when missing and apply migrations to it
        and to every licence's database.

        @return: Deferred firing with C{None}.
        """

    def close():
        """Release connections.  @return: Deferred firing with C{None}."""

    def health():
        """
        Check that the database answers.

        @return: Deferred firing with C{None}, or failing with the reason.
        """

    def createLicence(licence, operator=None, password_hash=None, *, event_extra=None):
        """
        Create a licence, its database (migrated), and optionally its first
        operator, then record C{NEW_LICENCE} in the account events (with the
        fields of C{event_extra} added: the seed's PASSWORD, when sent).

        @param licence: a L{livechat.model.Licence}; C{number} 0 picks a free
            random six-digit number.
        @param operator: optional L{livechat.model.Operator} (its C{id} and
            C{licence} are ignored) made with C{password_hash}.
        @return: Deferred firing with the stored L{livechat.model.Licence}.
        """

    def getLicence(number):
        """@return: Deferred firing with the L{livechat.model.Licence} or C{None}."""

    def listLicences():
        """@return: Deferred firing with all licences, by number."""

    def updateLicence(number, **changes):
        """
        Change fields of a licence (C{lic_type}, C{expires_at}, seats, ...).

        @return: Deferred firing with the updated L{livechat.model.Licence}.
        """

    def deleteLicence(number):
        """
        Remove a licence, its operators and keys, and drop its database.

        @return: Deferred firing with C{None}.
        """

    def createOperator(licence, operator, password_hash, *, event_extra=None):
        """
        Add an operator to a licence, within its seats; records C{NEW_OPERATOR}
        (with the fields of C{event_extra} added).

        @return: Deferred firing with the stored L{livechat.model.Operator}.
        """

    def getOperator(licence, nick):
        """
        @return: Deferred firing with the L{livechat.model.Operator} of that
            nick (case-insensitive) or C{None}.
        """

    def getOperatorById(licence, id):
        """@return: Deferred firing with the operator of that internal id, or C{None}."""

    def getCredentials(licence, nick):
        """
        @return: Deferred firing with C{(Licence, Operator, password_hash)},
            or C{None} when the licence or the nick does not exist.
        """

    def listOperators(licence):
        """@return: Deferred firing with the operators of a licence, by nick."""

    def updateOperator(licence, nick, **changes):
        """@return: Deferred firing with the updated operator."""

    def setPasswordHash(licence, nick, password_hash):
        """@return: Deferred firing with C{None}; NotFound for an unknown nick."""

    def countOperators(licence):
        """
        @return: Deferred firing with C{{AccountType: number}} of the
            licence's enabled operators.
        """

    def createApiKey(licence, key_id, secret_hash, name, scopes):
        """Store an API key (see L{livechat.apikeys}).  @return: Deferred firing with C{None}."""

    def getApiKey(key_id):
        """
        @return: Deferred firing with C{(licence, secret hash, name, scopes,
            revoked)} or C{None}.
        """

    def listApiKeys(licence):
        """@return: Deferred firing with C{(key id, name, scopes, created, revoked)} tuples."""

    def revokeApiKey(licence, key_id):
        """@return: Deferred firing with C{None}; NotFound for an unknown key."""

    def createSubscription(licence, **fields):
        """
        Add an operator subscription (C{operators_cc}, C{operators_com},
        C{start_at}, C{end_at}, C{payment_method}, C{net_price}, C{vat}) and
        record C{NEW_OPERATOR_SUBSCRIPTION}.

        @return: Deferred firing with the subscription (a JSON-able dict).
        """

    def listSubscriptions(licence):
        """@return: Deferred firing with the licence's subscriptions, oldest first."""

    def subscribedSeats(licence, nowMS):
        """
        @return: Deferred firing with C{{AccountType: seats}} summed over the
            subscriptions running at C{nowMS}, or C{None} when none runs.
        """

    def getState(name):
        """@return: Deferred firing with a server-wide value (str) or C{None}."""

    def setState(name, value):
        """@return: Deferred firing with C{None}."""

    def claimState(name, value):
        """
        Set a server-wide value only if it is unset (one node wins).

        @return: Deferred firing with whether this call set it.
        """

    def forLicence(number):
        """
        The store of one licence's own data.  It can read and write nothing
        of any other licence.

        @return: an L{ILicenceStore} (no I/O happens here).
        """

    def createWebSession(session, maxPerOperator, idleMS):
        """
        Store a browser session (a L{livechat.storage.websessions.SessionRow}),
        first dropping the operator's ended sessions and the least recently
        used beyond C{maxPerOperator - 1}.

        @return: Deferred firing with how many older sessions were dropped.
        """

    def getWebSession(idHash):
        """
        @return: Deferred firing with C{(SessionRow, Licence, Operator)} or
            C{None} when no session has that hash.
        """

    def touchWebSession(idHash, nowMS):
        """@return: Deferred firing with whether the session still exists."""

    def deleteWebSession(idHash):
        """@return: Deferred firing with how many sessions were ended (0 or 1)."""

    def deleteOperatorWebSessions(licence, operator, scope=None):
        """
        End every browser session of an operator (of one scope, or all).

        @return: Deferred firing with the hashes of the sessions ended.
        """

    def listOperatorWebSessions(licence, operator):
        """@return: Deferred firing with the operator's sessions, oldest first."""

    def purgeWebSessions(nowMS, idleMS):
        """@return: Deferred firing with how many ended sessions were dropped."""


class ILicenceStore(Interface):
    """Storage of one licence's own database (the seed's C{LC<licence>})."""

    licence = Attribute("The licence number (int) this store is bound to.")

    def getSetting(name):
        """@return: Deferred firing with the value (str) or C{None}."""

    def setSetting(name, value):
        """@return: Deferred firing with C{None}."""

    def createGroup(name, description=""):
        """@return: Deferred firing with the new L{livechat.model.Group}."""

    def updateGroup(group_id, name=None, description=None):
        """
        Rename a group and/or change its description (C{None}: unchanged).

        @return: Deferred firing with the L{livechat.model.Group}; fails with
            L{livechat.storage.errors.NotFound} or, for a name another group
            has, L{livechat.storage.errors.Conflict}.
        """

    def deleteGroup(group_id):
        """
        Remove a group, its members and its own settings.

        @return: Deferred firing with C{None}; fails with C{NotFound}, or
            with C{Conflict} while chats wait in the group's queue.
        """

    def listGroups():
        """@return: Deferred firing with the groups, by name."""

    def setGroupMembers(group_id, operator_ids):
        """
        Make exactly C{operator_ids} (internal operator ids) the members.

        @return: Deferred firing with C{None}.
        """

    def groupMembers(group_id):
        """@return: Deferred firing with the sorted internal operator ids."""

    def groupsOf(operator_id):
        """@return: Deferred firing with the sorted ids of the operator's groups."""

    def groupExists(group_id):
        """@return: Deferred firing with whether the group exists."""

    def logEvent(event, payload, chat_id=None):
        """
        Append a domain event (C{NEW_OPERATOR}, C{CHAT_STARTED}, ...) with a
        JSON-able payload to the licence's event log.

        @return: Deferred firing with the event's id.
        """

    def events(since_id=0, limit=100, event=None, chat_id=None):
        """
        @return: Deferred firing with up to C{limit} events after
            C{since_id}, oldest first, as C{(id, created_at, event, chat_id,
            payload)} tuples; only those named C{event}, only those of chat
            C{chat_id}, when given.
        """

    def createChat(**fields):
        """
        Create a chat with its first participants and events (see
        L{livechat.storage.chats.createChat_txn} for the fields).

        @return: Deferred firing with C{(Chat, [StoredEvent], [DomainEvent])}.
        """

    def appendEvents(chat_id, events, **options):
        """
        Append events with the chat's next sequence numbers and, in the same
        transaction, change the chat, its participants, and log domain
        events.  Nothing is acknowledged before this commits.  The options
        (C{require}, C{requireParticipant}, C{update}, C{participants},
        C{domain}, C{domainAfter}) are those of
        L{livechat.storage.chats.appendEvents_txn}.

        @return: Deferred firing with C{(Chat after, [StoredEvent],
            [DomainEvent logged])}; fails
            with C{WrongState} when C{require} does not hold.
        """

    def eventsAfter(chat_id, after_seq, limit=1000):
        """@return: Deferred firing with the stored events after C{after_seq}, in order."""

    def eventsBetween(chat_id, after_seq, before_seq):
        """@return: Deferred firing with the events strictly between the two numbers."""

    def getChat(chat_id):
        """@return: Deferred firing with the L{livechat.model.Chat} or C{None}."""

    def participants(chat_id):
        """@return: Deferred firing with the active C{(participant, role)} pairs."""

    def openChatsOf(participant):
        """@return: Deferred firing with the open chats C{participant} is in."""

    def chatsByStatus(statuses):
        """@return: Deferred firing with the chats in those states, oldest first."""

    def chatsOfOperator(operator_id):
        """@return: Deferred firing with the chats offered to or held by the operator."""

    def chatsOfVisitor(visitor_id, limit=20):
        """@return: Deferred firing with a visitor's chats, newest first."""

    def teamChat():
        """@return: Deferred firing with the licence's team chat (made on first use)."""

    def openPair(pair_key):
        """@return: Deferred firing with the open private chat of that pair, or C{None}."""

    def transcript(chat_id):
        """@return: Deferred firing with the chat's ContentEvents, in order."""

    def getVisitor(visitor_id):
        """@return: Deferred firing with the L{livechat.model.VisitorRecord} or C{None}."""

    def recordVisit(visitor_id, new_visit, identity=None):
        """
        Note a visitor was seen (one more visit when C{new_visit}); store
        identity fields when given.

        @return: Deferred firing with the L{livechat.model.VisitorRecord}.
        """

    def leaveMessage(**fields):
        """
        Store a message a visitor left while nobody took chats (fields as
        L{livechat.storage.offline.OfflineMessage} without id and times).

        @return: Deferred firing with the stored OfflineMessage.
        """

    def offlineMessages(pending_only=True, limit=50):
        """
        @return: Deferred firing with the newest C{limit} left messages (only
            those no operator handled yet, with C{pending_only}), oldest first.
        """

    def markOfflineMailed(message_id):
        """@return: Deferred firing with C{None} once the message is noted as mailed."""

    def markOfflineHandled(message_ids, operator):
        """
        Mark left messages handled by C{operator} (internal id).

        @return: Deferred firing with the ids that were pending until now.
        """

    def cannedResponses(operator):
        """
        @return: Deferred firing with the licence's canned responses and
            C{operator}'s own (L{livechat.storage.canned.CannedResponse}), by shortcut.
        """

    def createCanned(owner, shortcut, text, maxPerLicence):
        """
        Add a canned response of C{owner} (an operator id, or C{None}: the
        licence's).

        @return: Deferred firing with it, or failing with
            L{livechat.storage.canned.TooMany} beyond C{maxPerLicence}.
        """

    def updateCanned(cannedId, owner, shortcut, text):
        """
        @return: Deferred firing with the changed response, or failing with
            L{livechat.storage.errors.NotFound} unless C{owner} owns it.
        """

    def deleteCanned(cannedId, owner):
        """@return: Deferred firing with C{None}, or failing with C{NotFound}."""


class IChannel(Interface):
    """
    Something connected that the core delivers to: an IWCS connection, a
    WebSocket, an SSE stream, a connector.  Adapters implement it; the core
    never knows which wire it is.
    """

    def deliver(message):
        """
        Send one message (a JSON-able dict in the core's vocabulary, see
        docs/events.md) to the other end.  Must not block; a channel that
        cannot keep up closes itself rather than buffer without bound.
        """

    def close(reason):
        """The core ends this connection (kicked, licence removed, shutdown)."""


class IBus(Interface):
    """
    Publish/subscribe between the processes of a cluster (and within one).
    Messages are JSON-able dicts; handlers must treat them as read-only.
    Delivery is at-most-once and ordered per publisher and channel; what
    must not be lost is in the database, and receivers fill gaps from it.
    """

    def publish(channel, message, replay=False):
        """
        Publish C{message} on C{channel}.  With C{replay} (numbered chat
        events, which receivers de-duplicate by their sequence), a bus that
        could not hand the message to the other processes sends the last
        such message of the channel again once it can, so that receivers
        learn there is a gap to fill.

        @return: Deferred firing with C{None} once handed over.
        """

    def subscribe(channel, handler):
        """
        Call C{handler(message)} for every message published to C{channel}
        from now on, on any node.

        @return: Deferred firing with an object whose C{unsubscribe()}
            returns a Deferred.
        """


class INotifier(Interface):
    """
    A sink of domain events (the seed's RPC events: CHAT_STARTED,
    OPERATOR_STATUS, ...).  Events reach it after they are committed to the
    licence's event log; delivery to the outside world is the notifier's
    business and must never block or fail the chat.
    """

    def notify(licence, event):
        """Take a L{livechat.storage.chats.DomainEvent} of C{licence}."""


class IRouter(Interface):
    """
    Who gets a new chat.  The router owns the operators' capacity and the
    queue of each licence; reserving capacity is atomic (on one node and,
    in a cluster, across nodes).  Every method returns a Deferred, so a
    router may keep its state elsewhere (Redis).
    """

    def updateOperator(licence, availability):
        """
        An operator's availability changed (status, capacity, groups), or
        the operator came online.

        @param availability: a L{livechat.core.routing.Availability}.
        @return: Deferred firing with the assignments this made possible,
            as L{livechat.core.routing.Assignment}s (queued chats given to
            operators; their capacity is reserved).
        """

    def removeOperator(licence, operator):
        """
        The operator is gone (offline).  Their reservations are dropped.

        @return: Deferred firing with the ids of the chats they had.
        """

    def leftNode(licence, operator):
        """
        This node holds no more connections of the operator, who stays
        online through another node: stop keeping their availability alive
        from here (their reservations stay).

        @return: Deferred firing with C{None}.
        """

    def route(licence, request):
        """
        Give the chat of a L{livechat.core.routing.RouteRequest} to an
        available operator, reserving a slot, or queue it.

        @return: Deferred firing with an L{livechat.core.routing.Assignment}
            whose C{operator} is C{None} when the chat was queued.
        """

    def reserve(licence, operator, chat):
        """
        Count C{chat} against C{operator} whatever their limit (a transfer
        to them, an invitation they sent).

        @return: Deferred firing with C{None}.
        """

    def release(licence, operator, chat):
        """
        The operator no longer has the chat.

        @return: Deferred firing with the assignments the freed slot made.
        """

    def dequeue(licence, chat):
        """Take a chat out of the queue.  @return: Deferred firing with C{None}."""

    def queue(licence):
        """@return: Deferred firing with the queued chat ids, first first."""

    def load(licence, operator):
        """@return: Deferred firing with the chat ids counted against the operator."""


class IPresence(Interface):
    """
    Soft state shared by the nodes: which operators are connected (and on
    which nodes), their status; whether each licence is online; the
    visitors on each licence's site.  In memory for a single node, in Redis
    with expiry for a cluster.  Every method returns a Deferred.
    """

    def operatorUp(licence, info, node):
        """
        C{node} has connections of the operator described by C{info} (a
        L{livechat.core.presence.OperatorInfo}); store or refresh it.
        """

    def operatorDown(licence, operator, node):
        """
        C{node} has no more connections of the operator.

        @return: Deferred firing with C{True} if no node has any now (the
            operator's presence is gone).
        """

    def operator(licence, operator):
        """@return: Deferred firing with the operator's OperatorInfo, or C{None}."""

    def operators(licence):
        """@return: Deferred firing with the connected operators' OperatorInfos."""

    def setOnline(licence, online):
        """
        Record whether the licence is online (its button state).

        @return: Deferred firing with whether that changed it (exactly one
            caller sees a change, even with several nodes).
        """

    def visitor(licence, visitor_id):
        """@return: Deferred firing with the L{livechat.core.visitors.VisitorState} or C{None}."""

    def putVisitor(state):
        """
        Store a visitor's state (new or changed).

        @return: Deferred firing with the visitors dropped to make room.
        """

    def removeVisitor(licence, visitor_id):
        """@return: Deferred firing with the removed state, or C{None}."""

    def visitors(licence):
        """@return: Deferred firing with the licence's visitors, oldest visit first."""

    def expiredVisitors():
        """
        Take the visitors idle for longer than the idle timeout out of the
        list (each is handed to exactly one caller).

        @return: Deferred firing with them.
        """

    def operatorAbsent(licence, operator, grace):
        """
        Account for an operator who holds chats in the database: is there
        no live presence of them (no node refreshes it), and has that lasted
        C{grace} seconds since a call first found them absent?  A call that
        finds them present forgets the absence.

        @return: Deferred firing with C{True} for exactly one caller (one
            node of a cluster) once the absence has lasted C{grace}, else
            C{False}; always C{False} while the shared state cannot be
            reached (a node that cannot see the others must not take their
            chats).
        """

    def lease(name, period):
        """
        Take the turn C{name} for the current period of C{period} seconds
        (by the caller's clock), so that periodic cluster-wide work is done
        by one node per period.

        @return: Deferred firing with C{True} for the first caller of a
            period, C{False} for the others (and while the shared state
            cannot be reached).
        """
