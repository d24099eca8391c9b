"""The asyncio client against a real ledgerd: the same calls, many requests in flight at
once with asyncio.gather, refusals, and the deadline on a silent server."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import List, Tuple

import pytest

from conftest import Ledgerd, credentials
from ledger_client import (
    AccountKind,
    AsyncClient,
    AuthFailed,
    Capture,
    Command,
    ConnectionClosed,
    Deposit,
    ErrorCode,
    Freeze,
    NoAnswer,
    OpenAccount,
    Options,
    OutcomeUnknown,
    Refused,
    ResultCode,
    SettleBegin,
    SettleConfirm,
    Transfer,
    TxState,
)
from test_client import SilentServer


async def setup(server: Ledgerd) -> AsyncClient:
    admin = await AsyncClient.connect(server.address, credentials("admin"))
    entries: List[Tuple[int, Command]] = [
        (1, OpenAccount("alice", 1, "USD")),
        (2, OpenAccount("bob", 2, "USD")),
        (3, OpenAccount("bank", 0, "USD", AccountKind.SYSTEM)),
        (4, Deposit("alice", "bank", Decimal("50.00"))),
    ]
    assert all(outcome.ok for outcome in await admin.submit(entries))
    return admin


def test_commands_queries_and_gathered_pipelines(server: Ledgerd) -> None:
    async def run() -> None:
        admin = await setup(server)
        async with admin:
            assert await admin.ping() >= 0
            [settling] = await admin.submit([(5, SettleBegin(4))])
            assert settling.ok and (await admin.tx(4)).state == TxState.SETTLING  # type: ignore[union-attr]
            assert (await admin.submit([(6, SettleConfirm(4))]))[0].ok
            results = await asyncio.gather(
                *(admin.submit([(100 + n, Transfer("alice", "bob", Decimal("0.25")))]) for n in range(200)),
                *(admin.account("bob") for _ in range(10)),
            )
            outcomes = [result[0] for result in results[:200]]  # type: ignore[index]
            assert all(outcome.ok for outcome in outcomes)
            bob = await admin.account("bob")
            assert bob is not None and bob.available == Decimal("50.00") and bob.ledger == Decimal("50.00")
            exposure = await admin.exposure("alice")
            assert exposure is not None and exposure.unsettled_minor == 0
            assert (await admin.submit([(300, Transfer("alice", "bob", 1))]))[0].result == ResultCode.INSUFFICIENT_FUNDS
            [hold] = await admin.submit([(301, Freeze("bob", 10))])
            [paid] = await admin.submit([(302, Capture(301, "alice", Decimal("2.5")))])
            assert hold.tx_state == TxState.FROZEN and paid.tx_state == TxState.SETTLED
            assert await admin.tx(999_999) is None
        assert admin.closed == "closed by the client"
        with pytest.raises(ConnectionClosed):
            await admin.ping()

    asyncio.run(run())


def test_refusals_and_authentication(server: Ledgerd) -> None:
    async def run() -> None:
        (await setup(server))
        reader = await AsyncClient.connect(server.address, credentials("reader"))
        with pytest.raises(Refused) as refused:
            await reader.submit([(7, Transfer("alice", "bob", 1))])
        assert refused.value.code == ErrorCode.FORBIDDEN
        assert (await reader.account("alice")) is not None
        await reader.close()
        with pytest.raises(AuthFailed):
            await AsyncClient.connect(server.address, credentials("reader").__class__("reader", "y" * 20))

    asyncio.run(run())


def test_a_silent_server_ends_requests_at_the_deadline() -> None:
    async def run() -> None:
        silent = SilentServer()
        client = await AsyncClient.connect(silent.address, credentials("admin"), Options(request_timeout_ms=200))
        submitted = asyncio.ensure_future(client.submit([(9, Transfer("alice", "bob", 1))]))
        queried = asyncio.ensure_future(client.tx(9))
        with pytest.raises(OutcomeUnknown) as unknown:
            await submitted
        assert unknown.value.tx_ids == (9,)
        with pytest.raises(NoAnswer):
            await queried
        assert client.closed is not None
        await client.close()

    asyncio.run(asyncio.wait_for(run(), 10))
