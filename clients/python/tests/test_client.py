"""The blocking client against a real ledgerd: every command and query, pipelining, the
refusals, and the retry contract (kill -9, a silent server, a shutdown)."""

from __future__ import annotations

import concurrent.futures
import socket
import struct
import threading
import time
from decimal import Decimal
from typing import Callable, Iterator, List, Tuple

import pytest

from conftest import Ledgerd, credentials
from ledger_client import (
    AccountKind,
    AccountStatus,
    AuthFailed,
    Capture,
    Client,
    Command,
    ConnectionClosed,
    Cutover,
    DefineCurrency,
    Deposit,
    ErrorCode,
    FeeKind,
    Freeze,
    InvalidRequest,
    Limits,
    NoAnswer,
    OpenAccount,
    Options,
    OutcomeUnknown,
    Refund,
    Refused,
    ResultCode,
    Role,
    SetAccountLimits,
    SetAccountStatus,
    SetFee,
    SetSettlementCycle,
    SettleBegin,
    SettleConfirm,
    SettleFail,
    Transfer,
    TxKind,
    TxState,
    Unfreeze,
    Withdraw,
)
from ledger_client.session import HELLO_REQUEST_ID
from ledger_client.crc32c import crc32c
from ledger_client.wire import MAGIC, PROTOCOL_VERSION, Op, encode_frame

ACCOUNTS = [
    ("alice", AccountKind.USER),
    ("bob", AccountKind.USER),
    ("bank", AccountKind.SYSTEM),
    ("fees", AccountKind.SYSTEM),
    ("risk", AccountKind.RISK),
    ("t1clr", AccountKind.SYSTEM),
]


def connect(server: Ledgerd, client_id: str = "admin", request_timeout_ms: int = 5_000) -> Client:
    return Client.connect(server.address, credentials(client_id), Options(request_timeout_ms=request_timeout_ms))


@pytest.fixture
def admin(server: Ledgerd) -> Iterator[Client]:
    with connect(server) as client:
        entries: List[Tuple[int, Command]] = [
            (900 + index, OpenAccount(name, index, "USD", kind)) for index, (name, kind) in enumerate(ACCOUNTS)
        ]
        assert all(outcome.ok for outcome in client.submit(entries))
        yield client


def one(client: Client, tx_id: int, command: Command) -> Tuple[ResultCode, TxState | None]:
    [outcome] = client.submit([(tx_id, command)])
    assert outcome.tx_id == tx_id
    return outcome.result, outcome.tx_state


def names(client: Client, outcome_balances: object) -> List[str]:
    ids = {}
    for name, _ in ACCOUNTS:
        account = client.account(name)
        assert account is not None
        ids[account.account_id] = name
    return [ids[balance.account_id] for balance in outcome_balances]  # type: ignore[attr-defined]


def test_every_command_and_query(admin: Client) -> None:
    assert admin.hello_ok.role == Role.ADMIN and admin.batch_len_max == 1024
    assert admin.ping() >= 0
    # Currencies: the same definition again is ok, another scale is not.
    assert one(admin, 1, DefineCurrency("XTS", 3)) == (ResultCode.OK, None)
    assert one(admin, 2, DefineCurrency("XTS", 3)) == (ResultCode.OK, None)
    assert one(admin, 3, DefineCurrency("XTS", 4))[0] == ResultCode.CURRENCY_EXISTS
    assert one(admin, 4, DefineCurrency("USD", 2))[0] == ResultCode.OK
    # A deposit: debit the channel, credit the customer, available at once.
    [deposit] = admin.submit([(10, Deposit("alice", "bank", Decimal("100.00")))])
    assert (deposit.result, deposit.tx_state) == (ResultCode.OK, TxState.PENDING_SETTLEMENT)
    assert names(admin, deposit.balances) == ["bank", "alice"]
    assert deposit.balances[1].available_minor == 10_000 and deposit.balances[1].ledger_minor == 0
    exposure = admin.exposure("alice")
    assert exposure is not None and (exposure.unsettled_minor, exposure.exposure_minor) == (10_000, 0)
    assert one(admin, 11, SettleBegin(10)) == (ResultCode.OK, None)
    tx = admin.tx(10)
    assert tx is not None and tx.state == TxState.SETTLING and (tx.debit, tx.credit) == ("bank", "alice")
    assert one(admin, 12, SettleConfirm(10)) == (ResultCode.OK, None)
    alice = admin.account("alice")
    assert alice is not None and (alice.available, alice.ledger) == (Decimal("100.00"), Decimal("100.00"))
    # More decimals than the currency: refused, never rounded; trailing zeros are not decimals.
    assert one(admin, 13, Deposit("alice", "bank", Decimal("1.001")))[0] == ResultCode.AMOUNT_PRECISION
    assert one(admin, 14, Deposit("alice", "bank", "1.000"))[0] == ResultCode.OK
    # A transfer, a retry of it, and its tx_id reused for other content.
    [transfer] = admin.submit([(20, Transfer("alice", "bob", Decimal("12.50")))])
    assert (transfer.result, transfer.tx_state, transfer.duplicate) == (ResultCode.OK, TxState.SETTLED, False)
    assert names(admin, transfer.balances) == ["alice", "bob"]
    [again] = admin.submit([(20, Transfer("alice", "bob", Decimal("12.5")))])
    assert again.duplicate and again.ok
    assert one(admin, 20, Transfer("alice", "bob", Decimal("12.51")))[0] == ResultCode.TX_ID_CONFLICT
    # A hold: capture part of it, release the rest; it ends settled (something was captured).
    assert one(admin, 30, Freeze("alice", 20)) == (ResultCode.OK, TxState.FROZEN)
    hold = admin.tx(30)
    assert hold is not None and hold.held_minor == 2_000 and hold.debit == hold.credit == "alice"
    assert one(admin, 31, Capture(30, "bob", 5)) == (ResultCode.OK, TxState.SETTLED)
    assert one(admin, 32, Unfreeze(30)) == (ResultCode.OK, None)
    released = admin.tx(32)
    assert released is not None and (released.kind, released.amount_minor, released.linked) == (TxKind.UNFREEZE, 1_500, 30)
    hold = admin.tx(30)
    assert hold is not None and hold.state == TxState.SETTLED and hold.held_minor == 0
    assert one(admin, 33, Unfreeze(30))[0] == ResultCode.HOLD_RELEASED
    # Expiry: Unix nanoseconds on the server's clock.
    assert one(admin, 34, Freeze("alice", 1, expires_ns=1))[0] == ResultCode.EXPIRY_IN_PAST
    later_ns = time.time_ns() + 600 * 10**9
    assert one(admin, 35, Freeze("alice", 1, expires_ns=later_ns)) == (ResultCode.OK, TxState.FROZEN)
    # A withdrawal the channel refuses: the money comes back.
    assert one(admin, 40, Withdraw("alice", "bank", 10)) == (ResultCode.OK, TxState.PENDING_SETTLEMENT)
    alice = admin.account("alice")
    assert alice is not None and alice.frozen_minor == 1_000 + 100
    assert one(admin, 41, SettleBegin(40))[0] == ResultCode.OK
    assert one(admin, 42, SettleFail(40))[0] == ResultCode.OK
    withdrawal = admin.tx(40)
    assert withdrawal is not None and withdrawal.state == TxState.FAILED
    # A partial refund reverses the original.
    assert one(admin, 50, Refund(20, Decimal("2.5"))) == (ResultCode.OK, TxState.SETTLED)
    original = admin.tx(20)
    assert original is not None and (original.state, original.refunded_minor) == (TxState.REVERSED, 250)
    # Fees, limits, status, settlement cycle, cutover.
    assert one(admin, 60, SetFee(FeeKind.TRANSFER, "USD", "fees", Decimal("0.10"), 0))[0] == ResultCode.OK
    [paid] = admin.submit([(61, Transfer("alice", "bob", 1))])
    assert names(admin, paid.balances) == ["alice", "bob", "fees"]
    assert one(admin, 62, SetAccountLimits("bob", Limits(tx_amount_max=Decimal("5"))))[0] == ResultCode.OK
    bob = admin.account("bob")
    assert bob is not None and bob.tx_amount_max_minor == 500 and bob.daily_debit_max_minor is None
    assert one(admin, 63, Transfer("bob", "alice", 6))[0] == ResultCode.TX_LIMIT_EXCEEDED
    assert one(admin, 64, SetAccountStatus("bob", AccountStatus.DEBIT_FROZEN))[0] == ResultCode.OK
    assert one(admin, 65, Transfer("bob", "alice", 1))[0] == ResultCode.ACCOUNT_DEBIT_FROZEN
    assert one(admin, 66, SetSettlementCycle("alice", "t1clr"))[0] == ResultCode.OK
    assert one(admin, 67, Cutover(20260102))[0] == ResultCode.OK
    assert one(admin, 68, Cutover(20260102))[0] == ResultCode.BUSINESS_DATE_CLOSED
    # A rejection is remembered like a success: failed, amount 0, no accounts.
    rejected = admin.tx(63)
    assert rejected is not None and (rejected.result, rejected.state, rejected.debit) == (
        ResultCode.TX_LIMIT_EXCEEDED, TxState.FAILED, None,
    )  # fmt: skip
    # Unknown things are "not found"; tx_id 0 names no transaction.
    assert admin.account("nobody") is None and admin.exposure("nobody") is None
    assert admin.tx(123456789) is None and admin.tx(0) is None


def test_pipelined_dependent_commands_run_in_order(admin: Client) -> None:
    assert one(admin, 1, Deposit("alice", "bank", 10))[0] == ResultCode.OK
    futures = [admin.send_submit([(100 + n, Transfer("alice", "bob", Decimal("0.01")))]) for n in range(300)]
    queries = [admin.send_query_account("bob") for _ in range(20)]
    outcomes = [future.result()[0] for future in futures]
    assert all(outcome.ok for outcome in outcomes)
    # Each transfer saw the one before it: alice's balance goes down by one cent each time.
    alice_after = [outcome.balances[0].available_minor for outcome in outcomes]
    assert alice_after == [1_000 - n for n in range(1, 301)]
    assert all(query.result() is not None for query in queries)
    bob = admin.account("bob")
    assert bob is not None and bob.available == Decimal("3.00")


def test_threads_share_one_client(admin: Client) -> None:
    assert one(admin, 1, Deposit("alice", "bank", 100))[0] == ResultCode.OK

    def pay(worker: int) -> List[bool]:
        return [one(admin, 10_000 * (worker + 1) + n, Transfer("alice", "bob", 1))[0] == ResultCode.OK for n in range(25)]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert all(all(result) for result in pool.map(pay, range(4)))
    alice = admin.account("alice")
    assert alice is not None and alice.available_minor == 0


def test_refusals_say_what_and_keep_the_connection(server: Ledgerd, admin: Client) -> None:
    with connect(server, "reader") as reader:
        assert reader.hello_ok.role == Role.READ
        with pytest.raises(Refused) as refused:
            reader.submit([(1, Transfer("alice", "bob", 1))])
        assert refused.value.code == ErrorCode.FORBIDDEN
        assert refused.value.server_message == "role read may not submit transfer (command 0)"
        assert reader.account("alice") is not None  # still usable
    with connect(server, "writer") as writer:
        with pytest.raises(Refused, match="may not submit define_currency"):
            writer.submit([(1, DefineCurrency("ABC", 2))])
        with pytest.raises(InvalidRequest):
            writer.submit([(n, Transfer("a", "b", 1)) for n in range(1, 1026)])
        with pytest.raises(InvalidRequest):
            writer.submit([(2, Transfer("a b", "c", 1))])
        assert writer.ping() >= 0
    with pytest.raises(AuthFailed):
        Client.connect(server.address, credentials("admin").__class__("admin", "x" * 20))


def test_kill_nine_leaves_outcomes_unknown_and_resending_resolves_them(server: Ledgerd, admin: Client) -> None:
    assert one(admin, 1, Deposit("alice", "bank", 1_000_000))[0] == ResultCode.OK
    writer = connect(server, "writer", request_timeout_ms=60_000)
    # Enough work (200 000 transfers) that the kill lands while some of it is still running.
    batches = [[(10_000 + 1_000 * n + k, Transfer("alice", "bob", 1)) for k in range(1_000)] for n in range(200)]
    futures = [writer.send_submit(batch) for batch in batches]
    futures[0].result()  # the server is executing them
    server.kill9()
    unknown: List[Tuple[int, ...]] = []
    unsent = 0
    for future in futures:
        try:
            assert all(outcome.ok for outcome in future.result())
        except OutcomeUnknown as error:
            unknown.append(error.tx_ids)
        except ConnectionClosed:
            unsent += 1  # not completely written: it cannot have run
    assert unknown, "the kill came after every reply: nothing was left to resolve"
    assert writer.closed is not None
    with pytest.raises(ConnectionClosed):
        writer.submit([(5, Transfer("alice", "bob", 1))])
    server.restart()
    with connect(server, "writer") as again:
        # Re-sending the same commands under the same tx_ids is authoritative: each runs once.
        for tx_ids in unknown:
            outcomes = again.submit([(tx_id, Transfer("alice", "bob", 1)) for tx_id in tx_ids])
            assert all(outcome.ok for outcome in outcomes)
        # Every batch ran exactly once, but those never completely sent: nothing lost, nothing twice.
        bob = again.account("bob")
        assert bob is not None and bob.available == Decimal(1_000 * (len(batches) - unsent))


class FakeServer:
    """One connection on 127.0.0.1: answers HELLO, then does what ``after_hello`` does."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.recv(1024)
        body = bytes([2]) + (8192).to_bytes(4, "little") + (64).to_bytes(4, "little")
        conn.sendall(encode_frame(Op.HELLO_OK, HELLO_REQUEST_ID, body))
        self.after_hello(conn)

    def after_hello(self, conn: socket.socket) -> None:
        raise NotImplementedError


class SilentServer(FakeServer):
    """A socket that answers HELLO and then nothing: deadlines must end the requests."""

    def after_hello(self, conn: socket.socket) -> None:
        while conn.recv(65536):
            pass


def test_a_passed_deadline_closes_and_leaves_every_request_unknown() -> None:
    silent = SilentServer()
    client = Client.connect(silent.address, credentials("admin"), Options(request_timeout_ms=200))
    assert client.in_flight_max == 64
    started = time.monotonic()
    submitted = client.send_submit([(7, Transfer("alice", "bob", 1)), (8, Transfer("alice", "bob", 2))])
    queried = client.send_query_account("alice")
    with pytest.raises(OutcomeUnknown) as unknown:
        submitted.result()
    assert unknown.value.tx_ids == (7, 8) and "within 200 ms" in unknown.value.reason
    with pytest.raises(NoAnswer):
        queried.result()
    assert 0.15 < time.monotonic() - started < 5
    with pytest.raises(ConnectionClosed):
        client.ping()
    client.close()


class GoodbyeServer(FakeServer):
    """Answers HELLO, then says the connection-level ``shutting_down`` once it has read
    ``goodbye_after_bytes`` more bytes (or at the client's EOF), and reads until that EOF."""

    def __init__(self, goodbye_after_bytes: int) -> None:
        self.goodbye_after_bytes = goodbye_after_bytes
        super().__init__()

    def after_hello(self, conn: socket.socket) -> None:
        seen = 0
        goodbye = connection_error(ErrorCode.SHUTTING_DOWN, b"stop")
        said = False
        while True:
            if not said and seen >= self.goodbye_after_bytes:
                conn.sendall(goodbye)
                said = True
            data = conn.recv(65536)
            if not data:
                break
            seen += len(data)
        if not said:
            conn.sendall(goodbye)
        conn.close()


class BrokenWrites:
    """A socket whose writes fail (EPIPE), after ``before`` returns; everything else is the
    real socket's."""

    def __init__(self, sock: socket.socket, before: Callable[[], None]) -> None:
        self._sock = sock
        self._before = before

    def sendall(self, data: bytes) -> None:
        self._before()
        raise BrokenPipeError(32, "Broken pipe")

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


def test_a_write_that_fails_after_the_goodbye_was_read_stays_refused() -> None:
    # The reader ends the request (Refused: shutting_down) before the write's error surfaces:
    # that outcome stands (this raced in CI: InvalidStateError on the finished future).
    goodbye = GoodbyeServer(1)
    client = Client.connect(goodbye.address, credentials("admin"))
    real = client._sock

    def part_then_goodbye() -> None:
        real.sendall(b"L")  # the frame's first byte; the server answers it with its goodbye
        wait_until(lambda: client.closed is not None)

    client._sock = BrokenWrites(real, part_then_goodbye)  # type: ignore[assignment]
    with pytest.raises(Refused) as refused:
        client.submit([(9, Transfer("alice", "bob", 1))])
    assert refused.value.code == ErrorCode.SHUTTING_DOWN
    real.close()


def test_a_write_that_fails_before_the_goodbye_is_read_says_why() -> None:
    # The write fails first; the goodbye the server sends then is still read and reported.
    goodbye = GoodbyeServer(1 << 30)
    client = Client.connect(goodbye.address, credentials("admin"))
    real = client._sock
    client._sock = BrokenWrites(real, lambda: None)  # type: ignore[assignment]
    with pytest.raises(ConnectionClosed) as closed:
        client.submit([(9, Transfer("alice", "bob", 1))])
    assert "not sent completely" in closed.value.reason and "shutting_down" in closed.value.reason
    assert client.closed is not None and "shutting_down" in client.closed
    real.close()


def connection_error(code: int, message: bytes) -> bytes:
    """A connection-level ERROR frame (request id 0), which a client never sends."""
    body = struct.pack("<HH", code, len(message)) + message
    head = MAGIC + struct.pack("<BBHQI", PROTOCOL_VERSION, Op.ERROR, 0, 0, len(body))
    return head + struct.pack("<I", crc32c(body, crc32c(head))) + body


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_shutdown_answers_what_it_read_and_refuses_the_rest(server: Ledgerd, admin: Client) -> None:
    assert one(admin, 1, Deposit("alice", "bank", 10**9))[0] == ResultCode.OK
    writer = connect(server, "writer")
    server.send_sigterm()
    answered: List[int] = []
    not_executed: List[int] = []
    tx_id = 2_000
    deadline = time.monotonic() + 20
    # One transfer after another until the server stops reading this connection.
    while not not_executed and time.monotonic() < deadline:
        tx_id += 1
        try:
            assert writer.submit([(tx_id, Transfer("alice", "bob", 1))])[0].ok
            answered.append(tx_id)
        except Refused as error:
            assert error.code == ErrorCode.SHUTTING_DOWN
            not_executed.append(tx_id)
        except ConnectionClosed as error:
            assert "shutting_down" in error.reason
            not_executed.append(tx_id)
    assert not_executed and writer.closed is not None and "shutting_down" in writer.closed
    assert server.process is not None and server.process.wait(30) == 0
    server.restart()
    with connect(server, "reader") as reader:
        for tx_id in answered + not_executed:
            assert (reader.tx(tx_id) is not None) == (tx_id in answered), tx_id
