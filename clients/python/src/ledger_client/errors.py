"""Every error the client raises. Secrets never appear in them.

The retry contract (PROTOCOL.md, "Timeouts and retries"):

- :class:`Refused`: the server refused the request; **nothing of it was executed**. Fix it, or
  (``busy``, ``shutting_down``) send it again later with the same ``tx_id`` values.
- :class:`OutcomeUnknown`: a SUBMIT whose outcome is unknown (deadline passed, connection
  broke, ERROR ``internal``): some, all or none of its commands may have run. Re-send the
  **same** commands (same ``tx_id``, same content) on a new connection, or look them up.
  Never re-send under new ``tx_id`` values.
- :class:`NoAnswer`: a query or ping that got no answer. Ask again.
- :class:`ConnectionClosed`: the connection is closed; the request was not sent (or not
  completely, so it cannot have run). Connect again.
"""

from __future__ import annotations

from typing import Sequence


class LedgerError(Exception):
    """Base class of every error of this package."""


class InvalidRequest(LedgerError, ValueError):
    """The request breaks a rule of the protocol (an account number with a space, a float
    amount, a ``tx_id`` of 0, ...). Nothing was sent."""


class ConnectError(LedgerError):
    """No TCP connection could be made."""


class HandshakeError(LedgerError):
    """The connection was made but HELLO did not complete (timeout, close, bad reply)."""


class AuthFailed(HandshakeError):
    """The server refused the client id or the secret."""

    def __init__(self, message: str) -> None:
        super().__init__(f"authentication failed: {message}")
        self.server_message = message


class Refused(LedgerError):
    """The server refused the request with an ERROR: nothing of it was executed.

    ``code`` is the error code (a :class:`~ledger_client.ErrorCode` when known, else the raw
    number); ``message`` is the server's, for people."""

    def __init__(self, request_id: int, code: int, message: str) -> None:
        from .wire import error_code_name

        super().__init__(f"request {request_id} refused: {error_code_name(code)}: {message}")
        self.request_id = request_id
        self.code = code
        self.server_message = message


class OutcomeUnknown(LedgerError):
    """A SUBMIT whose outcome is unknown: look the ``tx_ids`` up, or re-send the same commands
    on a new connection (never under new ``tx_id`` values)."""

    def __init__(self, request_id: int, tx_ids: Sequence[int], reason: str) -> None:
        super().__init__(
            f"request {request_id}: outcome of {len(tx_ids)} commands unknown ({reason}); "
            "look the tx_ids up or re-send the same commands"
        )
        self.request_id = request_id
        self.tx_ids = tuple(tx_ids)
        self.reason = reason


class NoAnswer(LedgerError):
    """A query or ping that got no answer (deadline passed, connection broke)."""

    def __init__(self, request_id: int, reason: str) -> None:
        super().__init__(f"request {request_id}: no answer ({reason})")
        self.request_id = request_id
        self.reason = reason


class ConnectionClosed(LedgerError):
    """The connection is closed: make a new client."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"connection closed: {reason}")
        self.reason = reason


class ProtocolError(LedgerError):
    """The server sent bytes that are not a valid frame (the connection is closed)."""
