"""The asyncio client: the same protocol and retry contract as :class:`~ledger_client.Client`,
with coroutines. Many requests may be in flight at once (``asyncio.gather``); replies are
matched by request id; a reader task takes them and a timer enforces the deadlines.

A write that fails after the request was handed to the transport is reported as
:class:`OutcomeUnknown` (the transport buffers: the client cannot tell how much was sent),
the safe side of the contract.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, cast

from .client import READ_CHUNK_LEN_BYTES, Address, Options, split_address
from .credentials import Credentials
from .errors import ConnectError, HandshakeError
from .session import ClientBase, Completion, Session, settle
from .wire import Account, Command, Exposure, Outcome, Tx, TxIdLike


class AsyncClient(ClientBase):
    """One authenticated connection to ``ledgerd``, for asyncio. Use :meth:`connect`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        session: Session,
        in_flight_max: int,
    ) -> None:
        super().__init__(session, in_flight_max)
        self._reader = reader
        self._writer = writer
        self._futures: Dict[int, "asyncio.Future[Any]"] = {}
        self._slots = asyncio.Semaphore(self.in_flight_max)
        self._loop = asyncio.get_running_loop()
        self._timer: Optional[asyncio.TimerHandle] = None
        self._read_task = asyncio.ensure_future(self._read_loop())

    @classmethod
    async def connect(
        cls, address: Address, credentials: Credentials, options: Options = Options()
    ) -> "AsyncClient":
        """Connects, sends HELLO and waits for HELLO_OK, within ``options.connect_timeout_ms``."""
        options.check()
        host, port = split_address(address)
        timeout_s = options.connect_timeout_ms / 1000
        deadline = time.monotonic() + timeout_s
        tls = options.ssl_context
        hostname = (options.server_hostname or host) if tls else None
        try:
            opening = asyncio.open_connection(host, port, ssl=tls, server_hostname=hostname)
            reader, writer = await asyncio.wait_for(opening, timeout_s)
        except (OSError, asyncio.TimeoutError) as error:
            raise ConnectError(f"cannot connect to {host}:{port}: {error or 'timeout'}") from None
        session = Session(options.request_timeout_ms / 1000)
        try:
            await asyncio.wait_for(_handshake(reader, writer, session, credentials, deadline), timeout_s)
        except asyncio.TimeoutError:
            writer.close()
            raise HandshakeError("handshake failed: no reply to HELLO in time") from None
        except BaseException:
            writer.close()
            raise
        return cls(reader, writer, session, options.in_flight_max)

    # ---- calls ----

    async def submit(self, entries: Sequence[Tuple[TxIdLike, Command]]) -> List[Outcome]:
        """Submits ``(tx_id, command)`` pairs and returns their outcomes, in order."""
        return cast(List[Outcome], await self._request(lambda s, now: s.submit(entries, now)))

    async def account(self, account_no: str) -> Optional[Account]:
        """The account, or ``None`` if there is none."""
        return cast(Optional[Account], await self._request(lambda s, now: s.query_account(account_no, now)))

    async def tx(self, tx_id: TxIdLike) -> Optional[Tx]:
        """The transaction, or ``None`` if the ledger does not remember it."""
        return cast(Optional[Tx], await self._request(lambda s, now: s.query_tx(tx_id, now)))

    async def exposure(self, account_no: str) -> Optional[Exposure]:
        """The account's unsettled deposits and exposure, or ``None``."""
        return cast(Optional[Exposure], await self._request(lambda s, now: s.query_exposure(account_no, now)))

    async def ping(self) -> float:
        """Round-trip time of a PING, in seconds."""
        start = time.monotonic()
        await self._request(lambda session, now: session.ping(now))
        return time.monotonic() - start

    async def close(self) -> None:
        """Closes the connection; requests still in flight end as outcome unknown."""
        self._finish(self._session.close("closed by the client"))
        await self._shut()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- internals ----

    async def _request(self, make: Callable[[Session, float], Tuple[int, bytes]]) -> Any:
        async with self._slots:
            request_id, frame = make(self._session, time.monotonic())
            future: "asyncio.Future[Any]" = self._loop.create_future()
            self._futures[request_id] = future
            self._arm_timer()
            try:
                self._writer.write(frame)
                await self._writer.drain()
            except (OSError, RuntimeError) as error:
                self._finish(self._session.close(f"write: {error}"))
            return await future

    def _arm_timer(self) -> None:
        deadline = self._session.next_deadline()
        if deadline is None or self._timer is not None:
            return
        delay = max(0.0, deadline - time.monotonic())
        self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._finish(self._session.expire(time.monotonic()))
        if self._session.closed is None:
            self._arm_timer()

    async def _read_loop(self) -> None:
        try:
            while self._session.closed is None:
                try:
                    data = await self._reader.read(READ_CHUNK_LEN_BYTES)
                except (OSError, asyncio.IncompleteReadError) as error:
                    self._finish(self._session.close(f"read: {error}"))
                    break
                self._finish(self._session.receive(data))
        finally:
            self._finish(self._session.close("the reader stopped"))

    def _finish(self, completions: List[Completion]) -> None:
        for completion in completions:
            settle(self._futures.pop(completion.request_id, None), completion)
        if self._session.closed is not None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._writer.close()

    async def _shut(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (OSError, RuntimeError):
            pass
        if self._read_task is not asyncio.current_task():
            await asyncio.gather(self._read_task, return_exceptions=True)


async def _handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    session: Session,
    credentials: Credentials,
    deadline: float,
) -> None:
    writer.write(session.hello(credentials.client_id, credentials.secret, deadline))
    await writer.drain()
    while session.hello_ok is None:
        try:
            data = await reader.read(READ_CHUNK_LEN_BYTES)
        except OSError as error:
            raise HandshakeError(f"handshake failed: {error}") from None
        for completion in session.receive(data):
            if completion.error is not None:
                raise completion.error
        if session.closed is not None:
            raise HandshakeError(f"handshake failed: {session.closed}")
