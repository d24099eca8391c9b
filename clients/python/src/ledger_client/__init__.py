"""A client for ``ledgerd``, written from ``protocol/PROTOCOL.md``.

>>> from decimal import Decimal
>>> from ledger_client import Client, Credentials, Transfer, new_tx_id
>>> client = Client.connect("127.0.0.1:7070", Credentials("admin", "SECRET"))  # doctest: +SKIP
>>> [outcome] = client.submit([(new_tx_id(), Transfer("alice", "bob", Decimal("12.50")))])  # doctest: +SKIP

- :class:`Client` (blocking, thread-safe, pipelined through ``send_*`` futures) and
  :class:`AsyncClient` (asyncio).
- Commands are the dataclasses below, one per ``CommandBody`` variant; amounts are
  :class:`decimal.Decimal` (or ``int``, or a decimal ``str``), sent exactly, never rounded.
- Errors: :class:`Refused` (nothing executed), :class:`OutcomeUnknown` (re-send the same
  commands or look them up), :class:`NoAnswer`, :class:`ConnectionClosed`, ... (``errors``).
"""

from .aio import AsyncClient
from .client import Client, Options
from .credentials import Credentials, load_credentials
from .errors import (
    AuthFailed, ConnectError, ConnectionClosed, HandshakeError, InvalidRequest, LedgerError,
    NoAnswer, OutcomeUnknown, ProtocolError, Refused,
)
from .wire import (
    Account, AccountKind, AccountStatus, Balance, Capture, Command, Cutover, DefineCurrency,
    Deposit, ErrorCode, Exposure, FeeKind, Freeze, HelloOk, Limits, OpenAccount, Outcome,
    Refund, ResultCode, Role, SetAccountLimits, SetAccountStatus, SetFee, SetSettlementCycle,
    SettleBegin, SettleConfirm, SettleFail, Transfer, Tx, TxKind, TxState, Unfreeze, Withdraw,
    amount_to_wire, minor_to_decimal, new_tx_id,
)

__all__ = [
    "Account", "AccountKind", "AccountStatus", "AsyncClient", "AuthFailed", "Balance",
    "Capture", "Client", "Command", "Options", "ConnectError", "ConnectionClosed", "Credentials",
    "Cutover", "DefineCurrency", "Deposit", "ErrorCode", "Exposure", "FeeKind", "Freeze",
    "HandshakeError", "HelloOk", "InvalidRequest", "LedgerError", "Limits", "NoAnswer",
    "OpenAccount", "Outcome", "OutcomeUnknown", "ProtocolError", "Refund", "Refused",
    "ResultCode", "Role", "SetAccountLimits", "SetAccountStatus", "SetFee",
    "SetSettlementCycle", "SettleBegin", "SettleConfirm", "SettleFail", "Transfer", "Tx",
    "TxKind", "TxState", "Unfreeze", "Withdraw", "amount_to_wire", "load_credentials",
    "minor_to_decimal", "new_tx_id",
]
