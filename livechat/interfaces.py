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

    def createLicence(licence, operator=None, password_hash=None):
        """
        Create a licence, its database (migrated), and optionally its first
        operator, then record C{NEW_LICENCE} in the licence's event log.

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

    def createOperator(licence, operator, password_hash):
        """
        Add an operator to a licence, within its seats; records C{NEW_OPERATOR}.

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


class ILicenceStore(Interface):
    """Storage of one licence's own database (the seed's C{LC<licence>})."""

    licence = Attribute("The licence number (int) this store is bound to.")

    def getSetting(name):
        """@return: Deferred firing with the value (str) or C{None}."""

    def setSetting(name, value):
        """@return: Deferred firing with C{None}."""

    def createGroup(name, description=""):
        """@return: Deferred firing with the new L{livechat.model.Group}."""

    def listGroups():
        """@return: Deferred firing with the groups, by name."""

    def setGroupMembers(group_id, operator_ids):
        """
        Make exactly C{operator_ids} (internal operator ids) the members.

        @return: Deferred firing with C{None}.
        """

    def groupMembers(group_id):
        """@return: Deferred firing with the sorted internal operator ids."""

    def logEvent(event, payload, chat_id=None):
        """
        Append a domain event (C{NEW_OPERATOR}, C{CHAT_STARTED}, ...) with a
        JSON-able payload to the licence's event log.

        @return: Deferred firing with the event's id.
        """

    def events(since_id=0, limit=100):
        """
        @return: Deferred firing with up to C{limit} events after
            C{since_id}, oldest first, as C{(id, created_at, event, chat_id,
            payload)} tuples.
        """
