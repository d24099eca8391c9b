"""The blocking client: one TCP connection, many requests in flight (pipelining).

``Client.connect`` authenticates; ``submit``, ``account``, ``tx``, ``exposure`` and ``ping``
send one request and wait for its reply. For throughput, the ``send_*`` methods return a
:class:`concurrent.futures.Future` at once; replies are matched by request id in whatever
order the server sends them. A reader thread takes the replies and enforces the deadlines. The
client may be shared by threads.
"""

from __future__ import annotations

import concurrent.futures
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from .credentials import Credentials
from .errors import ConnectError, ConnectionClosed, HandshakeError, InvalidRequest
from .session import ClientBase, Completion, Session, settle
from .wire import IN_FLIGHT_MAX, Account, Command, Exposure, Outcome, Tx, TxIdLike

CONNECT_TIMEOUT_MS_DEFAULT = 2_000
REQUEST_TIMEOUT_MS_DEFAULT = 5_000
IN_FLIGHT_DEFAULT = 1_024
TIMEOUT_MS_MAX = 3_600_000
#: How often the reader thread looks at the deadlines while waiting for bytes.
POLL_INTERVAL_S = 0.05
READ_CHUNK_LEN_BYTES = 64 * 1024
# How long a failed write waits for the reader to take what the server sent before.
UNSENT_DRAIN_S = 2.0

Address = Union[Tuple[str, int], str]


@dataclass(frozen=True)
class Options:
    """How a client connects and waits (the Rust client's defaults and ranges).

    ``ssl_context`` wraps the connection in TLS, for ``ledgerd --tls-cert ...`` (PROTOCOL.md,
    "TLS"; ``server_hostname`` defaults to the host); ``None`` speaks plain TCP."""

    connect_timeout_ms: int = CONNECT_TIMEOUT_MS_DEFAULT
    request_timeout_ms: int = REQUEST_TIMEOUT_MS_DEFAULT
    in_flight_max: int = IN_FLIGHT_DEFAULT
    ssl_context: Optional[ssl.SSLContext] = None
    server_hostname: Optional[str] = None

    def check(self) -> None:
        """Timeouts 1..=3 600 000 ms, in flight 1..=65 536."""
        for name in ("connect_timeout_ms", "request_timeout_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= TIMEOUT_MS_MAX:
                raise InvalidRequest(f"{name} {value!r} is outside 1..=3600000")
        value = self.in_flight_max
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= IN_FLIGHT_MAX:
            raise InvalidRequest(f"in_flight_max {value!r} is outside 1..=65536")


def split_address(address: Address) -> Tuple[str, int]:
    """``("127.0.0.1", 7070)`` or ``"127.0.0.1:7070"`` (``"[::1]:7070"`` for IPv6)."""
    if isinstance(address, tuple):
        return address
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise InvalidRequest(f"address {address!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


class Client(ClientBase):
    """One authenticated connection to ``ledgerd``. Use :meth:`connect`."""

    def __init__(self, sock: socket.socket, session: Session, in_flight_max: int) -> None:
        super().__init__(session, in_flight_max)
        self._sock = sock
        self._lock = threading.Lock()  # the session and the futures
        self._send_lock = threading.Lock()  # frames are written whole, in request-id order
        self._futures: Dict[int, "concurrent.futures.Future[Any]"] = {}
        self._slots = threading.BoundedSemaphore(self.in_flight_max)
        self._reader = threading.Thread(target=self._read_loop, name="ledger-client-reader", daemon=True)
        self._reader.start()

    @classmethod
    def connect(cls, address: Address, credentials: Credentials, options: Options = Options()) -> "Client":
        """Connects, sends HELLO and waits for HELLO_OK, within ``options.connect_timeout_ms``."""
        options.check()
        host, port = split_address(address)
        deadline = time.monotonic() + options.connect_timeout_ms / 1000
        try:
            sock = socket.create_connection((host, port), timeout=options.connect_timeout_ms / 1000)
        except OSError as error:
            raise ConnectError(f"cannot connect to {host}:{port}: {error}") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if options.ssl_context is not None:
                sock = options.ssl_context.wrap_socket(sock, server_hostname=options.server_hostname or host)
            session = Session(options.request_timeout_ms / 1000)
            _handshake(sock, session, credentials, deadline)
            sock.settimeout(options.request_timeout_ms / 1000)
        except BaseException:
            sock.close()
            raise
        return cls(sock, session, options.in_flight_max)

    # ---- blocking calls ----

    def submit(self, entries: Sequence[Tuple[TxIdLike, Command]]) -> List[Outcome]:
        """Submits ``(tx_id, command)`` pairs (1 to ``batch_len_max``) and waits for their
        outcomes, one per command, in order."""
        return self.send_submit(entries).result()

    def account(self, account_no: str) -> Optional[Account]:
        """The account, or ``None`` if there is none."""
        return self.send_query_account(account_no).result()

    def tx(self, tx_id: TxIdLike) -> Optional[Tx]:
        """The transaction, or ``None`` if the ledger does not remember it."""
        return self.send_query_tx(tx_id).result()

    def exposure(self, account_no: str) -> Optional[Exposure]:
        """The account's unsettled deposits and exposure, or ``None`` if there is none."""
        return self.send_query_exposure(account_no).result()

    def ping(self) -> float:
        """Round-trip time of a PING, in seconds."""
        start = time.monotonic()
        self.send_ping().result()
        return time.monotonic() - start

    # ---- pipelined calls ----

    def send_submit(self, entries: Sequence[Tuple[TxIdLike, Command]]) -> "concurrent.futures.Future[List[Outcome]]":
        return self._send(lambda session, now: session.submit(entries, now))

    def send_query_account(self, account_no: str) -> "concurrent.futures.Future[Optional[Account]]":
        return self._send(lambda session, now: session.query_account(account_no, now))

    def send_query_tx(self, tx_id: TxIdLike) -> "concurrent.futures.Future[Optional[Tx]]":
        return self._send(lambda session, now: session.query_tx(tx_id, now))

    def send_query_exposure(self, account_no: str) -> "concurrent.futures.Future[Optional[Exposure]]":
        return self._send(lambda session, now: session.query_exposure(account_no, now))

    def send_ping(self) -> "concurrent.futures.Future[int]":
        return self._send(lambda session, now: session.ping(now))

    def close(self) -> None:
        """Closes the connection; requests still in flight end as outcome unknown."""
        with self._lock:
            completions = self._session.close("closed by the client")
        self._finish(completions)
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        if threading.current_thread() is not self._reader:
            self._reader.join(timeout=1)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals ----

    def _send(self, make: Callable[[Session, float], Tuple[int, bytes]]) -> "concurrent.futures.Future[Any]":
        """Registers and writes one request. Bad input (``InvalidRequest``) and a closed
        connection (``ConnectionClosed``) raise here: nothing was sent."""
        # Waits for a free slot rather than failing: a client with more in flight only waits.
        self._slots.acquire()
        future: "concurrent.futures.Future[Any]" = concurrent.futures.Future()
        with self._send_lock:
            try:
                with self._lock:
                    request_id, frame = make(self._session, time.monotonic())
                    self._futures[request_id] = future
            except BaseException:
                self._slots.release()
                raise
            future.add_done_callback(lambda _: self._slots.release())
            try:
                self._sock.sendall(frame)
            except OSError as error:
                self._unsent(request_id, future, str(error) or type(error).__name__)
        return future

    def _unsent(self, request_id: int, future: "concurrent.futures.Future[Any]", reason: str) -> None:
        """A frame not written completely: it cannot have run, and the stream is cut
        mid-frame. What the server sent before (a reply to this request, its
        connection-level ``shutting_down``) is still read first: it says why."""
        with self._lock:
            self._session.forget(request_id)
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if threading.current_thread() is not self._reader:
            self._reader.join(UNSENT_DRAIN_S)
        with self._lock:
            owned = self._futures.pop(request_id, None) is not None
            closed = self._session.closed
            completions = self._session.close(f"request {request_id} not sent completely: {reason}")
        if owned and not future.done():
            why = reason if closed is None else f"{reason}; {closed}"
            future.set_exception(ConnectionClosed(f"request {request_id} not sent completely: {why}"))
        self._finish(completions)

    def _read_loop(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._session.closed is not None:
                        return
                    completions = self._session.expire(time.monotonic())
                self._finish(completions)
                try:
                    ready = _pending(self._sock) or select.select([self._sock], [], [], POLL_INTERVAL_S)[0]
                    data = self._sock.recv(READ_CHUNK_LEN_BYTES) if ready else None
                except (socket.timeout, BlockingIOError, ssl.SSLWantReadError):
                    continue
                except (OSError, ValueError) as error:
                    with self._lock:
                        completions = self._session.close(f"read: {error}")
                    self._finish(completions)
                    return
                if data is None:
                    continue
                with self._lock:
                    completions = self._session.receive(data)
                self._finish(completions)
        finally:
            with self._lock:
                completions = self._session.close("the reader stopped")
            self._finish(completions)

    def _finish(self, completions: List[Completion]) -> None:
        for completion in completions:
            with self._lock:
                future = self._futures.pop(completion.request_id, None)
            settle(future, completion)
        if self._session.closed is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _pending(sock: socket.socket) -> bool:
    return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0


def _handshake(sock: socket.socket, session: Session, credentials: Credentials, deadline: float) -> None:
    sock.sendall(session.hello(credentials.client_id, credentials.secret, deadline))
    while session.hello_ok is None:
        left = deadline - time.monotonic()
        if left <= 0:
            completions = session.expire(time.monotonic())
        else:
            sock.settimeout(left)
            try:
                data = sock.recv(READ_CHUNK_LEN_BYTES)
            except socket.timeout:
                continue
            except OSError as error:
                raise HandshakeError(f"handshake failed: {error}") from None
            completions = session.receive(data)
        for completion in completions:
            if completion.error is not None:
                raise completion.error
        if session.closed is not None:
            raise HandshakeError(f"handshake failed: {session.closed}")
