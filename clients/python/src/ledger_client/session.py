"""The protocol state of one connection, without I/O (both clients drive it): it makes request
frames, takes the bytes the server sent, and says how each request ended.

A :class:`Session` numbers requests (HELLO is 1, then 2, 3, ...), remembers those in flight
with their deadlines, matches replies by request id, and applies the retry contract of
PROTOCOL.md: a passed deadline, a broken stream or an invalid frame closes the connection and
ends every request in flight as :class:`OutcomeUnknown` (a SUBMIT) or :class:`NoAnswer` (the
others); after the server's connection-level ``shutting_down`` they end as
:class:`Refused` (not executed) instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple

from .errors import (
    AuthFailed,
    ConnectionClosed,
    HandshakeError,
    LedgerError,
    NoAnswer,
    OutcomeUnknown,
    ProtocolError,
    Refused,
)
from .wire import (
    Command,
    ErrorCode,
    ErrorReply,
    Frame,
    FrameReader,
    HelloOk,
    Op,
    Outcome,
    TxIdLike,
    account_query_body,
    encode_frame,
    hello_body,
    error_code_name,
    outcome_unknown,
    submit_body,
    tx_query_body,
)

HELLO_REQUEST_ID = 1

#: The reply op each request op expects.
REPLY_OP = {
    Op.HELLO: Op.HELLO_OK,
    Op.PING: Op.PONG,
    Op.SUBMIT: Op.SUBMIT_REPLY,
    Op.QUERY_ACCOUNT: Op.ACCOUNT,
    Op.QUERY_TX: Op.TX,
    Op.QUERY_EXPOSURE: Op.EXPOSURE,
}


@dataclass
class InFlight:
    """A request waiting for its reply."""

    op: Op
    deadline: float
    tx_ids: Tuple[int, ...]
    ping_payload: int = 0


@dataclass(frozen=True)
class Completion:
    """How one request ended: its reply's value, or the error to raise."""

    request_id: int
    value: object
    error: Optional[LedgerError]


class SettableFuture(Protocol):
    """What both clients' futures offer (``concurrent.futures`` and ``asyncio``)."""

    def done(self) -> bool: ...
    def set_result(self, result: Any) -> None: ...
    def set_exception(self, exception: BaseException) -> None: ...


def settle(future: Optional[SettableFuture], completion: Completion) -> None:
    """Ends ``future`` (if any, and not already ended) the way ``completion`` says."""
    if future is None or future.done():
        return
    if completion.error is not None:
        future.set_exception(completion.error)
    else:
        future.set_result(completion.value)


class ClientBase:
    """What both clients share: the session and what HELLO_OK said."""

    def __init__(self, session: "Session", in_flight_max: int) -> None:
        hello_ok = session.hello_ok
        assert hello_ok is not None, "connected sessions are authenticated"
        self._session = session
        self.hello_ok: HelloOk = hello_ok
        #: Requests kept in flight at most: the smaller of the option and the server's.
        self.in_flight_max = min(in_flight_max, hello_ok.in_flight_max)

    @property
    def batch_len_max(self) -> int:
        """Most commands per SUBMIT on this connection."""
        return self.hello_ok.batch_len_max

    @property
    def closed(self) -> Optional[str]:
        """Why the connection is closed, or ``None`` while it is open."""
        return self._session.closed


class Session:
    """One connection's protocol state. Not thread-safe: its owner serializes calls."""

    def __init__(self, request_timeout_s: float) -> None:
        self.request_timeout_s = request_timeout_s
        self._reader = FrameReader()
        self._next_request_id = HELLO_REQUEST_ID + 1
        self._in_flight: Dict[int, InFlight] = {}
        self.closed: Optional[str] = None
        self._server_stopped: Optional[ErrorReply] = None
        self.hello_ok: Optional[HelloOk] = None

    # ---- requests ----

    def hello(self, client_id: str, secret: str, deadline: float) -> bytes:
        """The HELLO frame (request id 1), registered in flight until ``deadline``."""
        self._in_flight[HELLO_REQUEST_ID] = InFlight(Op.HELLO, deadline, ())
        return encode_frame(Op.HELLO, HELLO_REQUEST_ID, hello_body(client_id, secret))

    @property
    def batch_len_max(self) -> int:
        return self.hello_ok.batch_len_max if self.hello_ok else 1

    def submit(self, entries: Sequence[Tuple[TxIdLike, Command]], now: float) -> Tuple[int, bytes]:
        body, tx_ids = submit_body(entries, self.batch_len_max)
        return self._request(Op.SUBMIT, body, tx_ids, now)

    def query_account(self, account_no: str, now: float) -> Tuple[int, bytes]:
        return self._request(Op.QUERY_ACCOUNT, account_query_body(account_no), (), now)

    def query_exposure(self, account_no: str, now: float) -> Tuple[int, bytes]:
        return self._request(Op.QUERY_EXPOSURE, account_query_body(account_no), (), now)

    def query_tx(self, tx_id: TxIdLike, now: float) -> Tuple[int, bytes]:
        return self._request(Op.QUERY_TX, tx_query_body(tx_id), (), now)

    def ping(self, now: float) -> Tuple[int, bytes]:
        payload = self._next_request_id
        return self._request(Op.PING, payload.to_bytes(8, "little"), (), now, payload)

    def _request(
        self, op: Op, body: bytes, tx_ids: Tuple[int, ...], now: float, ping_payload: int = 0
    ) -> Tuple[int, bytes]:
        if self.closed is not None:
            raise ConnectionClosed(self.closed)
        request_id = self._next_request_id
        frame = encode_frame(op, request_id, body)
        self._next_request_id += 1
        deadline = now + self.request_timeout_s
        self._in_flight[request_id] = InFlight(op, deadline, tx_ids, ping_payload)
        return request_id, frame

    def forget(self, request_id: int) -> None:
        """Drops a request that cannot have run (its frame was not written completely)
        without closing: the caller still reads what the server sent before."""
        self._in_flight.pop(request_id, None)

    # ---- replies ----

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def next_deadline(self) -> Optional[float]:
        return min((request.deadline for request in self._in_flight.values()), default=None)

    def receive(self, data: bytes) -> List[Completion]:
        """Takes bytes from the server; returns the requests they ended."""
        if self.closed is not None:
            return []
        if not data:
            return self.close("the server closed the connection")
        self._reader.feed(data)
        completions: List[Completion] = []
        while self.closed is None:
            try:
                frame = self._reader.next_frame()
            except ProtocolError as error:
                completions += self.close(f"the server sent an invalid frame: {error}")
                break
            if frame is None:
                break
            completions += self._dispatch(frame)
        return completions

    def expire(self, now: float) -> List[Completion]:
        """Closes the connection when a deadline has passed."""
        overdue = [rid for rid, request in self._in_flight.items() if request.deadline <= now]
        if not overdue or self.closed is not None:
            return []
        first = min(overdue)
        timeout_ms = round(self.request_timeout_s * 1000)
        if first == HELLO_REQUEST_ID:
            return self.close("no reply to HELLO in time")
        return self.close(f"no reply to request {first} within {timeout_ms} ms")

    def close(self, reason: str) -> List[Completion]:
        """Closes the session: every request in flight ends (see the module's doc)."""
        if self.closed is not None:
            return []
        self.closed = reason
        completions = [
            Completion(request_id, None, self._lost(request_id, request, reason))
            for request_id, request in sorted(self._in_flight.items())
        ]
        self._in_flight.clear()
        return completions

    def _lost(self, request_id: int, request: InFlight, reason: str) -> LedgerError:
        if request.op == Op.HELLO:
            return HandshakeError(f"handshake failed: {reason}")
        if self._server_stopped is not None:
            stopped = self._server_stopped
            return Refused(request_id, stopped.code, stopped.message)
        if request.op == Op.SUBMIT:
            return OutcomeUnknown(request_id, request.tx_ids, reason)
        return NoAnswer(request_id, reason)

    def _dispatch(self, frame: Frame) -> List[Completion]:
        if frame.request_id == 0:
            assert isinstance(frame.message, ErrorReply)
            error = frame.message
            if error.code == ErrorCode.SHUTTING_DOWN:
                self._server_stopped = error
            name = error_code_name(error.code)
            return self.close(f"the server closed the connection: {name}: {error.message}")
        request = self._in_flight.pop(frame.request_id, None)
        if request is None:
            return self.close(f"a reply to request {frame.request_id}, which is not in flight")
        if frame.op == Op.ERROR:
            assert isinstance(frame.message, ErrorReply)
            return self._refused(frame.request_id, request, frame.message)
        if frame.op != REPLY_OP[request.op]:
            self._in_flight[frame.request_id] = request
            return self.close(f"{frame.op.name} does not answer {request.op.name} {frame.request_id}")
        value: object = frame.message
        if request.op == Op.HELLO:
            assert isinstance(value, HelloOk)
            self.hello_ok = value
        elif request.op == Op.SUBMIT:
            outcomes: Tuple[Outcome, ...] = value  # type: ignore[assignment]
            if tuple(outcome.tx_id for outcome in outcomes) != request.tx_ids:
                self._in_flight[frame.request_id] = request
                return self.close(f"SUBMIT_REPLY {frame.request_id} does not match its tx_ids")
            value = list(outcomes)
        elif request.op == Op.PING and value != request.ping_payload:
            self._in_flight[frame.request_id] = request
            return self.close(f"PONG {frame.request_id} does not echo its payload")
        return [Completion(frame.request_id, value, None)]

    def _refused(self, request_id: int, request: InFlight, error: ErrorReply) -> List[Completion]:
        failure: LedgerError
        if request.op == Op.HELLO:
            if error.code == ErrorCode.AUTH_FAILED:
                failure = AuthFailed(error.message)
            else:
                name = error_code_name(error.code)
                failure = HandshakeError(f"HELLO refused: {name}: {error.message}")
        elif request.op == Op.SUBMIT and outcome_unknown(error.code):
            reason = f"server error {error_code_name(error.code)}: {error.message}"
            failure = OutcomeUnknown(request_id, request.tx_ids, reason)
        else:
            failure = Refused(request_id, error.code, error.message)
        completions = [Completion(request_id, None, failure)]
        if error.code in _CLOSING_CODES or request.op == Op.HELLO:
            name = error_code_name(error.code)
            completions += self.close(f"request {request_id} refused with {name}")
        return completions


_CLOSING_CODES = {
    ErrorCode.MALFORMED_FRAME,
    ErrorCode.UNSUPPORTED_VERSION,
    ErrorCode.FRAME_TOO_LARGE,
    ErrorCode.NOT_AUTHENTICATED,
    ErrorCode.AUTH_FAILED,
    ErrorCode.SHUTTING_DOWN,
}
