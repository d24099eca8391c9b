"""The wire format of protocol/PROTOCOL.md: enumerations, limits, commands, replies, and the
encoding of requests and decoding of replies. No I/O here.

Every integer is little endian; amounts are exact: a :class:`decimal.Decimal` goes out as its
canonical ``(mantissa, scale)`` (no trailing zero decimal) and balances come back as integer
minor units (``*_minor``), turned into ``Decimal`` only with a known scale.
"""

from __future__ import annotations

import enum
import struct
import typing
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import ClassVar, Optional, Sequence, Tuple, Union

from .crc32c import crc32c
from .errors import InvalidRequest, ProtocolError

MAGIC = b"LDGR"
PROTOCOL_VERSION = 1
HEADER_LEN_BYTES = 24
BODY_LEN_BYTES_MAX = 4 * 1024 * 1024
BATCH_LEN_MAX = 8_192
COMMAND_BODY_LEN_BYTES_MAX = 256
ACCOUNT_NO_LEN_BYTES_MAX = 32
AMOUNT_SCALE_MAX = 28
ERROR_MESSAGE_LEN_BYTES_MAX = 1_024
IN_FLIGHT_MAX = 65_536
BALANCES_LEN_MAX = 3
TX_HISTORY_LEN_MAX = 8
CLIENT_ID_LEN_BYTES_MAX = 64
SECRET_LEN_BYTES_MIN = 16
SECRET_LEN_BYTES_MAX = 128
TX_STATE_NONE = 0xFF
I128_MIN = -(1 << 127)
I128_MAX = (1 << 127) - 1
U128_MAX = (1 << 128) - 1
U64_MAX = (1 << 64) - 1
U32_MAX = (1 << 32) - 1


class Op(enum.IntEnum):
    """The op byte of a frame; replies are their request's op with the high bit set."""

    HELLO = 0x01
    PING = 0x02
    SUBMIT = 0x03
    QUERY_ACCOUNT = 0x04
    QUERY_TX = 0x05
    QUERY_EXPOSURE = 0x06
    HELLO_OK = 0x81
    PONG = 0x82
    SUBMIT_REPLY = 0x83
    ACCOUNT = 0x84
    TX = 0x85
    EXPOSURE = 0x86
    ERROR = 0xFF


class ErrorCode(enum.IntEnum):
    """The code of an ERROR reply. A code this client does not know is kept as a plain int
    and treated like ``INTERNAL``."""

    MALFORMED_FRAME = 1
    UNSUPPORTED_VERSION = 2
    FRAME_TOO_LARGE = 3
    UNKNOWN_OPERATION = 4
    UNEXPECTED_OPERATION = 5
    MALFORMED_BODY = 6
    BAD_ACCOUNT_NO = 7
    MALFORMED_AMOUNT = 8
    BATCH_TOO_LARGE = 9
    NOT_AUTHENTICATED = 10
    AUTH_FAILED = 11
    FORBIDDEN = 12
    BUSY = 13
    SHUTTING_DOWN = 14
    INTERNAL = 15
    NOT_PRIMARY = 16
    UNAVAILABLE = 17


def error_code(raw: int) -> int:
    """The :class:`ErrorCode` for ``raw``, or ``raw`` itself when unknown."""
    try:
        return ErrorCode(raw)
    except ValueError:
        return raw


def error_code_name(code: int) -> str:
    """``forbidden`` for 12; ``error code 99`` for an unknown code."""
    try:
        return ErrorCode(code).name.lower()
    except ValueError:
        return f"error code {code}"


def outcome_unknown(code: int) -> bool:
    """Whether a SUBMIT refused with ``code`` may have executed some of its commands."""
    return code == ErrorCode.INTERNAL or not isinstance(error_code(code), ErrorCode)


#: What a client may do (HELLO_OK).
Role = enum.IntEnum("Role", [("READ", 0), ("TRANSACT", 1), ("ADMIN", 2)])


class ResultCode(enum.IntEnum):
    """The result of one command; ``OK`` is the only success."""

    OK = 0
    TX_ID_CONFLICT = 1
    ACCOUNT_NOT_FOUND = 2
    ACCOUNT_EXISTS = 3
    CURRENCY_MISMATCH = 4
    CURRENCY_UNKNOWN = 5
    CURRENCY_EXISTS = 6
    INVALID_SCALE = 7
    AMOUNT_NOT_POSITIVE = 8
    AMOUNT_PRECISION = 9
    AMOUNT_TOO_LARGE = 10
    OVERFLOW = 11
    INSUFFICIENT_FUNDS = 12
    TX_LIMIT_EXCEEDED = 13
    DAILY_LIMIT_EXCEEDED = 14
    ACCOUNT_DEBIT_FROZEN = 15
    ACCOUNT_CLOSED = 16
    ACCOUNT_NOT_EMPTY = 17
    SAME_ACCOUNT = 18
    NOT_CHANNEL_ACCOUNT = 19
    HOLD_NOT_FOUND = 20
    HOLD_RELEASED = 21
    HOLD_INSUFFICIENT = 22
    EXPIRY_IN_PAST = 23
    TX_NOT_FOUND = 24
    ILLEGAL_TRANSITION = 25
    REFUND_EXCEEDS_ORIGINAL = 26
    NOT_REFUNDABLE = 27
    RISK_ACCOUNT_MISSING = 28
    RISK_ACCOUNT_EXISTS = 29
    INVALID_STATUS_CHANGE = 30
    CAPACITY_EXCEEDED = 31
    EXPOSURE_LIMIT_EXCEEDED = 32
    FEE_INVALID = 33
    SETTLEMENT_CYCLE_INVALID = 34
    BUSINESS_DATE_CLOSED = 35
    TOO_MANY_HOLDS = 36
    TOO_MANY_PENDING_SETTLEMENTS = 37


class TxState(enum.IntEnum):
    """A transaction's lifecycle state, in lifecycle order."""

    CREATED = 0
    RISK_CHECKED = 1
    FROZEN = 2
    PENDING_SETTLEMENT = 3
    SETTLING = 4
    SETTLED = 5
    FAILED = 6
    REVERSED = 7


class TxKind(enum.IntEnum):
    """The kind of a transaction: its command's variant index."""

    DEFINE_CURRENCY = 0
    OPEN_ACCOUNT = 1
    SET_ACCOUNT_STATUS = 2
    SET_ACCOUNT_LIMITS = 3
    DEPOSIT = 4
    WITHDRAW = 5
    TRANSFER = 6
    FREEZE = 7
    UNFREEZE = 8
    CAPTURE = 9
    SETTLE_BEGIN = 10
    SETTLE_CONFIRM = 11
    SETTLE_FAIL = 12
    REFUND = 13
    SET_FEE = 14
    SET_SETTLEMENT_CYCLE = 15
    CUTOVER = 16


#: User (a customer), system (a channel, a fee account) or risk.
AccountKind = enum.IntEnum("AccountKind", [("USER", 0), ("SYSTEM", 1), ("RISK", 2)])


#: What an account may do.
AccountStatus = enum.IntEnum("AccountStatus", [("ACTIVE", 0), ("DEBIT_FROZEN", 1), ("CLOSED", 2)])


#: Which movement a fee schedule applies to.
FeeKind = enum.IntEnum("FeeKind", [("TRANSFER", 0), ("CAPTURE", 1), ("WITHDRAW", 2)])


# ---- field rules ----

#: Code points an account number in a request may not contain (PROTOCOL.md, "Conventions").
ACCOUNT_NO_REFUSED: Tuple[Tuple[int, int], ...] = (
    (0x0000, 0x0020),
    (0x007F, 0x00A0),
    (0x00AD, 0x00AD),
    (0x061C, 0x061C),
    (0x1680, 0x1680),
    (0x180E, 0x180E),
    (0x2000, 0x200F),
    (0x2028, 0x202F),
    (0x205F, 0x2064),
    (0x2066, 0x206F),
    (0x3000, 0x3000),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
)


def account_no_bytes(account_no: str) -> bytes:
    """The bytes of a request's account number, checked: 1..=32 bytes of UTF-8, visible text."""
    if not isinstance(account_no, str):
        raise InvalidRequest(f"an account number is a str, not {type(account_no).__name__}")
    for char in account_no:
        code = ord(char)
        if any(first <= code <= last for first, last in ACCOUNT_NO_REFUSED):
            raise InvalidRequest(
                f"account number {account_no!r} contains U+{code:04X}, a control character, "
                "a space or an invisible character"
            )
    encoded = account_no.encode("utf-8")
    if not 1 <= len(encoded) <= ACCOUNT_NO_LEN_BYTES_MAX:
        raise InvalidRequest(
            f"account number {account_no!r} is {len(encoded)} bytes of UTF-8, not 1..=32"
        )
    return encoded


def currency_bytes(code: str) -> bytes:
    """A currency code: 3..=8 upper-case ASCII letters or digits, zero-padded to 8 bytes."""
    if not isinstance(code, str) or not 3 <= len(code) <= 8:
        raise InvalidRequest(f"currency code {code!r} is not 3..=8 characters")
    if not all("A" <= c <= "Z" or "0" <= c <= "9" for c in code):
        raise InvalidRequest(f"currency code {code!r} is not upper-case ASCII letters and digits")
    return code.encode("ascii").ljust(8, b"\0")


TxIdLike = Union[int, uuid.UUID]


def tx_id_int(tx_id: TxIdLike) -> int:
    """A ``tx_id`` as a number: an int in 1..2^128, or a UUID (its 128 bits); never 0."""
    if isinstance(tx_id, uuid.UUID):
        value = tx_id.int
    elif isinstance(tx_id, int) and not isinstance(tx_id, bool):
        value = tx_id
    else:
        raise InvalidRequest(f"a tx_id is an int or a uuid.UUID, not {type(tx_id).__name__}")
    if value == 0:
        raise InvalidRequest("tx_id 0 is reserved (it names no transaction)")
    if not 0 < value <= U128_MAX:
        raise InvalidRequest(f"tx_id {value} is not a 128-bit unsigned number")
    return value


def new_tx_id() -> int:
    """A fresh random ``tx_id`` (the 128 bits of a UUID v4; never 0)."""
    return uuid.uuid4().int


AmountLike = Union[Decimal, int, str]


def amount_to_wire(amount: AmountLike) -> Tuple[int, int]:
    """An amount as its one wire encoding ``(mantissa, scale)``: exact, no trailing zero decimal.

    ``Decimal("12.50")`` is ``(125, 1)``, ``100`` is ``(100, 0)``. A ``str`` is read as a
    Decimal. A float is refused (it is not exact), and so is a value that needs more than 28
    decimals or a mantissa beyond 128 bits: nothing is ever rounded."""
    if isinstance(amount, bool) or isinstance(amount, float):
        raise InvalidRequest(f"amounts are Decimal, int or str, never {type(amount).__name__}")
    if isinstance(amount, str):
        try:
            value = Decimal(amount)
        except ArithmeticError:
            raise InvalidRequest(f"{amount!r} is not a decimal amount") from None
    elif isinstance(amount, int):
        value = Decimal(amount)
    elif isinstance(amount, Decimal):
        value = amount
    else:
        raise InvalidRequest(f"amounts are Decimal, int or str, not {type(amount).__name__}")
    if not value.is_finite():
        raise InvalidRequest(f"amount {amount!r} is not a finite number")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    mantissa = int("".join(map(str, digits)) or "0")
    if exponent >= 0:
        mantissa *= 10**exponent
        scale = 0
    else:
        scale = -exponent
        while scale > 0 and mantissa % 10 == 0:
            mantissa //= 10
            scale -= 1
    if mantissa == 0:
        scale = 0
    if sign:
        mantissa = -mantissa
    if scale > AMOUNT_SCALE_MAX:
        raise InvalidRequest(f"amount {amount} has {scale} decimals; at most 28 can be sent")
    if not I128_MIN <= mantissa <= I128_MAX:
        raise InvalidRequest(f"amount {amount} does not fit 128 bits")
    return mantissa, scale


def minor_to_decimal(minor: int, scale: int) -> Decimal:
    """Minor units as an exact Decimal with ``scale`` decimals (``12345, 2`` -> ``123.45``)."""
    return Decimal(minor).scaleb(-scale)


# ---- commands ----


@dataclass(frozen=True)
class Limits:
    """An account's risk limits (``None``: no limit). Amounts in the account's currency."""

    tx_amount_max: Optional[AmountLike] = None
    daily_debit_max: Optional[AmountLike] = None
    exposure_max: Optional[AmountLike] = None

    def encode(self) -> bytes:
        return b"".join(
            _option_amount(limit)
            for limit in (self.tx_amount_max, self.daily_debit_max, self.exposure_max)
        )


def _amount(amount: AmountLike) -> bytes:
    mantissa, scale = amount_to_wire(amount)
    return mantissa.to_bytes(16, "little", signed=True) + bytes([scale])


def _option_amount(amount: Optional[AmountLike]) -> bytes:
    return b"\0" if amount is None else b"\x01" + _amount(amount)


def _account_no(account_no: str) -> bytes:
    encoded = account_no_bytes(account_no)
    return bytes([len(encoded)]) + encoded


def _u32(value: int, what: str) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U32_MAX:
        raise InvalidRequest(f"{what} {value!r} is not a u32")
    return value.to_bytes(4, "little")


def _u64(value: int, what: str) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
        raise InvalidRequest(f"{what} {value!r} is not a u64")
    return value.to_bytes(8, "little")


def _tx(tx_id: TxIdLike) -> bytes:
    return tx_id_int(tx_id).to_bytes(16, "little")


def _variant(index: int) -> bytes:
    return index.to_bytes(4, "little")


@dataclass(frozen=True)
class DefineCurrency:
    """Variant 0 (admin): a currency and its decimals (0..=8)."""

    code: str
    scale: int

    def encode(self) -> bytes:
        if isinstance(self.scale, bool) or not isinstance(self.scale, int):
            raise InvalidRequest(f"scale {self.scale!r} is not an int")
        if not 0 <= self.scale <= 255:
            raise InvalidRequest(f"scale {self.scale} is not a u8")
        return _variant(0) + currency_bytes(self.code) + bytes([self.scale])


@dataclass(frozen=True)
class OpenAccount:
    """Variant 1 (admin): a new account with zero balances."""

    account_no: str
    user_id: int
    currency: str
    kind: AccountKind = AccountKind.USER
    limits: Limits = field(default_factory=Limits)

    def encode(self) -> bytes:
        return (
            _variant(1)
            + _account_no(self.account_no)
            + _u64(self.user_id, "user_id")
            + currency_bytes(self.currency)
            + _variant(AccountKind(self.kind))
            + self.limits.encode()
        )


@dataclass(frozen=True)
class SetAccountStatus:
    """Variant 2 (admin)."""

    account_no: str
    status: AccountStatus

    def encode(self) -> bytes:
        return _variant(2) + _account_no(self.account_no) + _variant(AccountStatus(self.status))


@dataclass(frozen=True)
class SetAccountLimits:
    """Variant 3 (admin): replaces all three limits."""

    account_no: str
    limits: Limits = field(default_factory=Limits)

    def encode(self) -> bytes:
        return _variant(3) + _account_no(self.account_no) + self.limits.encode()


@dataclass(frozen=True)
class _ChannelMovement:
    """A deposit or a withdrawal: an account, the channel's system account, an amount."""

    account_no: str
    channel_no: str
    amount: AmountLike
    VARIANT: ClassVar[int] = -1

    def encode(self) -> bytes:
        accounts = _account_no(self.account_no) + _account_no(self.channel_no)
        return _variant(self.VARIANT) + accounts + _amount(self.amount)


@dataclass(frozen=True)
class Transfer:
    """Variant 6: an internal transfer from ``from_no`` to ``to_no``: ``available`` and
    ``ledger`` move at once on both sides (T+0)."""

    from_no: str
    to_no: str
    amount: AmountLike

    def encode(self) -> bytes:
        return (
            _variant(6) + _account_no(self.from_no) + _account_no(self.to_no) + _amount(self.amount)
        )


@dataclass(frozen=True)
class Freeze:
    """Variant 7: hold an amount. ``expires_ns``: Unix time in nanoseconds, or no expiry."""

    account_no: str
    amount: AmountLike
    expires_ns: Optional[int] = None

    def encode(self) -> bytes:
        expiry = b"\0" if self.expires_ns is None else b"\x01" + _u64(self.expires_ns, "expires_ns")
        return _variant(7) + _account_no(self.account_no) + _amount(self.amount) + expiry


@dataclass(frozen=True)
class Unfreeze:
    """Variant 8: release what is left of the hold ``hold`` (its Freeze's tx_id)."""

    hold: TxIdLike

    def encode(self) -> bytes:
        return _variant(8) + _tx(self.hold)


@dataclass(frozen=True)
class Capture:
    """Variant 9: pay (part of) the hold ``hold`` to ``to_no``."""

    hold: TxIdLike
    to_no: str
    amount: AmountLike

    def encode(self) -> bytes:
        return _variant(9) + _tx(self.hold) + _account_no(self.to_no) + _amount(self.amount)


@dataclass(frozen=True)
class _SettlementStep:
    """A settlement command on the deposit or withdrawal ``target``."""

    target: TxIdLike
    VARIANT: ClassVar[int] = -1

    def encode(self) -> bytes:
        return _variant(self.VARIANT) + _tx(self.target)


@dataclass(frozen=True)
class Refund:
    """Variant 13: run (part of) a settled movement backwards."""

    original: TxIdLike
    amount: AmountLike

    def encode(self) -> bytes:
        return _variant(13) + _tx(self.original) + _amount(self.amount)


@dataclass(frozen=True)
class SetFee:
    """Variant 14 (admin): the fee schedule of ``kind`` in ``currency``."""

    kind: FeeKind
    currency: str
    fee_account_no: str
    fixed: AmountLike
    rate_bps: int

    def encode(self) -> bytes:
        return (
            _variant(14)
            + _variant(FeeKind(self.kind))
            + currency_bytes(self.currency)
            + _account_no(self.fee_account_no)
            + _amount(self.fixed)
            + _u32(self.rate_bps, "rate_bps")
        )


@dataclass(frozen=True)
class SetSettlementCycle:
    """Variant 15 (admin): T+1 through ``t1_clearing_no``, or T+0 with ``None``."""

    account_no: str
    t1_clearing_no: Optional[str] = None

    def encode(self) -> bytes:
        clearing = b"\0" if self.t1_clearing_no is None else b"\x01" + _account_no(self.t1_clearing_no)
        return _variant(15) + _account_no(self.account_no) + clearing


@dataclass(frozen=True)
class Cutover:
    """Variant 16 (admin): close the business day ``business_date`` (YYYYMMDD)."""

    business_date: int

    def encode(self) -> bytes:
        return _variant(16) + _u32(self.business_date, "business_date")


# Variant 4, money arriving through the channel's system account ``channel_no``, and variant
# 5, money leaving through it (held until the channel confirms).
class Deposit(_ChannelMovement): VARIANT = 4  # noqa: E701
class Withdraw(_ChannelMovement): VARIANT = 5  # noqa: E701


# Variants 10, 11 and 12: the deposit or withdrawal ``target`` was sent to its channel, the
# channel confirmed it, the channel refused it.
class SettleBegin(_SettlementStep): VARIANT = 10  # noqa: E701
class SettleConfirm(_SettlementStep): VARIANT = 11  # noqa: E701
class SettleFail(_SettlementStep): VARIANT = 12  # noqa: E701


Command = Union[
    DefineCurrency,
    OpenAccount,
    SetAccountStatus,
    SetAccountLimits,
    Deposit,
    Withdraw,
    Transfer,
    Freeze,
    Unfreeze,
    Capture,
    SettleBegin,
    SettleConfirm,
    SettleFail,
    Refund,
    SetFee,
    SetSettlementCycle,
    Cutover,
]

#: The command classes, for ``isinstance``.
COMMAND_TYPES = typing.get_args(Command)


# ---- replies ----


@dataclass(frozen=True)
class HelloOk:
    """What the handshake established."""

    role: Role
    batch_len_max: int
    in_flight_max: int


@dataclass(frozen=True)
class Balance:
    """One touched account's balances right after a command, in minor units of its currency."""

    account_id: int
    available_minor: int
    frozen_minor: int
    ledger_minor: int


@dataclass(frozen=True)
class Outcome:
    """One command's outcome (SUBMIT_REPLY)."""

    tx_id: int
    result: ResultCode
    duplicate: bool
    tx_state: Optional[TxState]
    balances: Tuple[Balance, ...]

    @property
    def ok(self) -> bool:
        """True when the command was applied (now, or the first time for a duplicate)."""
        return self.result == ResultCode.OK


@dataclass(frozen=True)
class Account:
    """An account (ACCOUNT); balances in minor units, ``scale`` decimals."""

    account_id: int
    account_no: str
    user_id: int
    currency: str
    scale: int
    kind: AccountKind
    status: AccountStatus
    available_minor: int
    frozen_minor: int
    ledger_minor: int
    tx_amount_max_minor: Optional[int]
    daily_debit_max_minor: Optional[int]

    @property
    def available(self) -> Decimal:
        return minor_to_decimal(self.available_minor, self.scale)

    @property
    def frozen(self) -> Decimal:
        return minor_to_decimal(self.frozen_minor, self.scale)

    @property
    def ledger(self) -> Decimal:
        return minor_to_decimal(self.ledger_minor, self.scale)


@dataclass(frozen=True)
class Tx:
    """What the ledger remembers of a transaction (TX); amounts in minor units."""

    tx_id: int
    kind: TxKind
    result: ResultCode
    state: Optional[TxState]
    amount_minor: int
    refunded_minor: int
    held_minor: int
    captured_minor: int
    linked: Optional[int]
    history: Tuple[TxState, ...]
    debit: Optional[str]
    credit: Optional[str]


@dataclass(frozen=True)
class Exposure:
    """An account's unsettled deposits and how much of them is spent (EXPOSURE)."""

    account_no: str
    currency: str
    scale: int
    unsettled_minor: int
    exposure_minor: int
    exposure_max_minor: Optional[int]


@dataclass(frozen=True)
class ErrorReply:
    """An ERROR frame."""

    code: int
    message: str


# ---- encoding requests ----


def encode_frame(op: int, request_id: int, body: bytes) -> bytes:
    """A whole frame: the 24-byte header (CRC32C of bytes 0..20 and the body), then ``body``."""
    if not 0 < request_id <= U64_MAX:
        raise InvalidRequest(f"request id {request_id} is not in 1..2^64")
    if len(body) > BODY_LEN_BYTES_MAX:
        raise InvalidRequest(f"a body of {len(body)} bytes is above {BODY_LEN_BYTES_MAX}")
    head = MAGIC + struct.pack("<BBHQI", PROTOCOL_VERSION, op, 0, request_id, len(body))
    checksum = crc32c(body, crc32c(head))
    return head + struct.pack("<I", checksum) + body


def hello_body(client_id: str, secret: str) -> bytes:
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
    if not 1 <= len(client_id) <= CLIENT_ID_LEN_BYTES_MAX or not set(client_id) <= allowed:
        raise InvalidRequest("a client id is 1..=64 of A-Z a-z 0-9 . _ -")
    if not SECRET_LEN_BYTES_MIN <= len(secret) <= SECRET_LEN_BYTES_MAX or not all(
        "!" <= c <= "~" for c in secret
    ):
        raise InvalidRequest("a secret is 16..=128 printable ASCII characters without space")
    return (
        bytes([len(client_id)])
        + client_id.encode("ascii")
        + bytes([len(secret)])
        + secret.encode("ascii")
    )


def submit_body(entries: Sequence[Tuple[TxIdLike, Command]], batch_len_max: int) -> Tuple[bytes, Tuple[int, ...]]:
    """The body of a SUBMIT and its ``tx_id`` values, in order."""
    if not 1 <= len(entries) <= batch_len_max:
        raise InvalidRequest(f"a SUBMIT holds 1..={batch_len_max} commands, not {len(entries)}")
    parts = [struct.pack("<I", len(entries))]
    tx_ids = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, tuple) or len(entry) != 2:
            raise InvalidRequest(f"command {index}: an entry is a (tx_id, command) pair")
        tx_id, command = entry
        if not isinstance(command, COMMAND_TYPES):
            raise InvalidRequest(f"command {index}: {type(command).__name__} is not a command")
        try:
            number = tx_id_int(tx_id)
            body = command.encode()
        except InvalidRequest as error:
            raise InvalidRequest(f"command {index}: {error}") from None
        if len(body) > COMMAND_BODY_LEN_BYTES_MAX:
            raise InvalidRequest(f"command {index}: its body is above 256 bytes")
        parts.append(number.to_bytes(16, "little") + struct.pack("<H", len(body)) + body)
        tx_ids.append(number)
    return b"".join(parts), tuple(tx_ids)


def account_query_body(account_no: str) -> bytes:
    return _account_no(account_no)


def tx_query_body(tx_id: TxIdLike) -> bytes:
    """QUERY_TX's body. 0 is allowed here (it names no transaction: the answer is "not found")."""
    if tx_id == 0:
        return bytes(16)
    return _tx(tx_id)


# ---- decoding replies ----


@dataclass(frozen=True)
class Frame:
    """A decoded frame: its op, request id and body (decoded for replies)."""

    op: Op
    request_id: int
    message: object


class _Cursor:
    """Reads fixed-width little-endian fields off a body; running out is a ProtocolError."""

    def __init__(self, data: bytes, op: Op) -> None:
        self.data = data
        self.pos = 0
        self.op = op

    def take(self, length: int) -> bytes:
        end = self.pos + length
        if end > len(self.data):
            raise ProtocolError(f"{self.op.name} body is truncated")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "little")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "little")

    def u64(self) -> int:
        return int.from_bytes(self.take(8), "little")

    def u128(self) -> int:
        return int.from_bytes(self.take(16), "little")

    def i128(self) -> int:
        return int.from_bytes(self.take(16), "little", signed=True)

    def text(self, length: int, what: str) -> str:
        try:
            return self.take(length).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"{self.op.name}: {what} is not UTF-8") from None

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolError(f"{self.op.name} body has {len(self.data) - self.pos} trailing bytes")

    def invalid(self, what: str, value: int) -> ProtocolError:
        return ProtocolError(f"{self.op.name} body: {what} = {value} is not allowed")


def _enum(cursor: _Cursor, kind: type[enum.IntEnum], raw: int, what: str) -> enum.IntEnum:
    try:
        return kind(raw)
    except ValueError:
        raise cursor.invalid(what, raw) from None


def _found(cursor: _Cursor) -> bool:
    found = cursor.u8()
    if found not in (0, 1):
        raise cursor.invalid("found", found)
    return found == 1


def _currency(cursor: _Cursor) -> str:
    raw = cursor.take(8)
    code = raw.rstrip(b"\0")
    if not 3 <= len(code) <= 8 or not all(65 <= b <= 90 or 48 <= b <= 57 for b in code):
        raise cursor.invalid("currency length", len(code))
    return code.decode("ascii")


def _optional(cursor: _Cursor, present: bool, what: str) -> Optional[int]:
    value = cursor.i128()
    if not present and value != 0:
        raise cursor.invalid(what, value)
    return value if present else None


def _tx_state(cursor: _Cursor) -> Optional[TxState]:
    raw = cursor.u8()
    if raw == TX_STATE_NONE:
        return None
    return TxState(_enum(cursor, TxState, raw, "tx_state"))


def _reply_account_no(cursor: _Cursor, length: int) -> str:
    if not 1 <= length <= ACCOUNT_NO_LEN_BYTES_MAX:
        raise cursor.invalid("account number length", length)
    return cursor.text(length, "account number")


def _decode_hello_ok(cursor: _Cursor) -> HelloOk:
    role = Role(_enum(cursor, Role, cursor.u8(), "role"))
    batch_len_max = cursor.u32()
    in_flight_max = cursor.u32()
    if not 1 <= batch_len_max <= BATCH_LEN_MAX:
        raise cursor.invalid("batch_len_max", batch_len_max)
    if not 1 <= in_flight_max <= IN_FLIGHT_MAX:
        raise cursor.invalid("in_flight_max", in_flight_max)
    return HelloOk(role, batch_len_max, in_flight_max)


def _decode_submit_reply(cursor: _Cursor) -> Tuple[Outcome, ...]:
    count = cursor.u32()
    if not 1 <= count <= BATCH_LEN_MAX:
        raise cursor.invalid("count", count)
    outcomes = []
    for _ in range(count):
        tx_id = cursor.u128()
        result = ResultCode(_enum(cursor, ResultCode, cursor.u8(), "result"))
        flags = cursor.u8()
        if flags & ~1:
            raise cursor.invalid("flags", flags)
        state = _tx_state(cursor)
        balances_len = cursor.u8()
        if balances_len > BALANCES_LEN_MAX:
            raise cursor.invalid("balances_len", balances_len)
        balances = tuple(
            Balance(cursor.u32(), cursor.i128(), cursor.i128(), cursor.i128())
            for _ in range(balances_len)
        )
        outcomes.append(Outcome(tx_id, result, flags == 1, state, balances))
    return tuple(outcomes)


def _decode_account(cursor: _Cursor) -> Optional[Account]:
    if not _found(cursor):
        return None
    account_id = cursor.u32()
    user_id = cursor.u64()
    currency = _currency(cursor)
    scale = cursor.u8()
    kind = AccountKind(_enum(cursor, AccountKind, cursor.u8(), "kind"))
    status = AccountStatus(_enum(cursor, AccountStatus, cursor.u8(), "status"))
    available, frozen, ledger = cursor.i128(), cursor.i128(), cursor.i128()
    flags = cursor.u8()
    if flags & ~0b11:
        raise cursor.invalid("limit flags", flags)
    tx_max = _optional(cursor, bool(flags & 1), "tx_amount_max_minor")
    daily_max = _optional(cursor, bool(flags & 2), "daily_debit_max_minor")
    account_no = _reply_account_no(cursor, cursor.u8())
    return Account(
        account_id, account_no, user_id, currency, scale, kind, status,
        available, frozen, ledger, tx_max, daily_max,
    )  # fmt: skip


def _decode_tx(cursor: _Cursor) -> Optional[Tx]:
    if not _found(cursor):
        return None
    tx_id = cursor.u128()
    kind = TxKind(_enum(cursor, TxKind, cursor.u8(), "kind"))
    result = ResultCode(_enum(cursor, ResultCode, cursor.u8(), "result"))
    state = _tx_state(cursor)
    flags = cursor.u8()
    if flags & ~1:
        raise cursor.invalid("flags", flags)
    amount, refunded, held, captured = cursor.i128(), cursor.i128(), cursor.i128(), cursor.i128()
    linked_raw = cursor.u128()
    if not flags and linked_raw:
        raise cursor.invalid("linked", linked_raw)
    history_len, debit_len, credit_len = cursor.u8(), cursor.u8(), cursor.u8()
    if history_len > TX_HISTORY_LEN_MAX:
        raise cursor.invalid("history_len", history_len)
    history = tuple(TxState(_enum(cursor, TxState, cursor.u8(), "history")) for _ in range(history_len))
    debit = _reply_account_no(cursor, debit_len) if debit_len else None
    credit = _reply_account_no(cursor, credit_len) if credit_len else None
    linked = linked_raw if flags else None
    return Tx(tx_id, kind, result, state, amount, refunded, held, captured, linked, history, debit, credit)


def _decode_exposure(cursor: _Cursor) -> Optional[Exposure]:
    if not _found(cursor):
        return None
    currency = _currency(cursor)
    scale = cursor.u8()
    unsettled, exposure = cursor.i128(), cursor.i128()
    flags = cursor.u8()
    if flags & ~1:
        raise cursor.invalid("limit flags", flags)
    exposure_max = _optional(cursor, bool(flags & 1), "exposure_max_minor")
    account_no = _reply_account_no(cursor, cursor.u8())
    return Exposure(account_no, currency, scale, unsettled, exposure, exposure_max)


def _decode_error(cursor: _Cursor) -> ErrorReply:
    code = error_code(cursor.u16())
    length = cursor.u16()
    if length > ERROR_MESSAGE_LEN_BYTES_MAX:
        raise cursor.invalid("message_len", length)
    return ErrorReply(code, cursor.text(length, "message"))


def decode_reply(op: Op, body: bytes) -> object:
    """The body of a reply frame of ``op``, decoded and checked (requests are not decoded)."""
    cursor = _Cursor(body, op)
    message: object
    if op == Op.HELLO_OK:
        message = _decode_hello_ok(cursor)
    elif op == Op.PONG:
        message = cursor.u64()
    elif op == Op.SUBMIT_REPLY:
        message = _decode_submit_reply(cursor)
    elif op == Op.ACCOUNT:
        message = _decode_account(cursor)
    elif op == Op.TX:
        message = _decode_tx(cursor)
    elif op == Op.EXPOSURE:
        message = _decode_exposure(cursor)
    elif op == Op.ERROR:
        message = _decode_error(cursor)
    else:
        raise ProtocolError(f"the server sent {op.name}, a request op")
    cursor.finish()
    return message


class FrameReader:
    """Splits the server's byte stream into frames. Any error is a :class:`ProtocolError`: the
    stream cannot be read further."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_frame(self) -> Optional[Frame]:
        """The next whole frame, or ``None`` when more bytes are needed."""
        buffer = self._buffer
        if len(buffer) < HEADER_LEN_BYTES:
            return None
        if buffer[:4] != MAGIC:
            raise ProtocolError(f"the server's frame starts with {bytes(buffer[:4])!r}, not LDGR")
        version, op_raw, reserved, request_id, body_len, checksum = struct.unpack_from("<BBHQII", buffer, 4)
        if version != PROTOCOL_VERSION:
            raise ProtocolError(f"the server speaks protocol version {version}, not 1")
        if reserved != 0:
            raise ProtocolError("reserved header bytes are not zero")
        if body_len > BODY_LEN_BYTES_MAX:
            raise ProtocolError(f"a body of {body_len} bytes is above {BODY_LEN_BYTES_MAX}")
        if len(buffer) < HEADER_LEN_BYTES + body_len:
            return None
        body = bytes(buffer[HEADER_LEN_BYTES : HEADER_LEN_BYTES + body_len])
        computed = crc32c(body, crc32c(bytes(buffer[:20])))
        del buffer[: HEADER_LEN_BYTES + body_len]
        if computed != checksum:
            raise ProtocolError(f"checksum 0x{computed:08x} does not match the header's 0x{checksum:08x}")
        try:
            op = Op(op_raw)
        except ValueError:
            raise ProtocolError(f"the server sent the unknown op 0x{op_raw:02x}") from None
        if request_id == 0 and op != Op.ERROR:
            raise ProtocolError(f"{op.name} with request id 0")
        return Frame(op, request_id, decode_reply(op, body))
