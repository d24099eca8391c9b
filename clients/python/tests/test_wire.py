"""The codec against PROTOCOL.md itself: its worked examples byte for byte, its CRC32C check
value, and the field rules (amounts, account numbers, tx ids) — no server needed."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import PROTOCOL_MD
from ledger_client import (
    AccountKind,
    AccountStatus,
    InvalidRequest,
    ProtocolError,
    ResultCode,
    Role,
    Transfer,
    TxKind,
    TxState,
    amount_to_wire,
    load_credentials,
    minor_to_decimal,
)
from ledger_client import crc32c as crc
from ledger_client.session import Session
from ledger_client.wire import (
    ACCOUNT_NO_REFUSED,
    Account,
    ErrorReply,
    FrameReader,
    HelloOk,
    Op,
    Outcome,
    Tx,
    account_no_bytes,
    encode_frame,
    hello_body,
    submit_body,
)

EXAMPLE_TX = 0x0102030405060708090A0B0C0D0E0F10


def golden(name: str) -> bytes:
    """The bytes of PROTOCOL.md's ``# golden: NAME`` block."""
    text = PROTOCOL_MD.read_text()
    start = text.index(f"# golden: {name}\n")
    block = text[start:].split("\n```", 1)[0].splitlines()[1:]
    data = bytearray()
    for line in block:
        offset, rest = line.split(":", 1)
        assert int(offset, 16) == len(data), line
        data += bytes(int(token, 16) for token in rest.split("|")[0].split())
    return bytes(data)


def decode(data: bytes) -> object:
    reader = FrameReader()
    reader.feed(data)
    frame = reader.next_frame()
    assert frame is not None and reader.next_frame() is None
    return frame.message


def test_crc32c_check_value_and_both_implementations() -> None:
    assert crc.crc32c_pure(b"123456789") == 0xE3069283
    assert crc.crc32c(b"123456789") == 0xE3069283
    data = bytes(range(256)) * 3
    assert crc.crc32c_pure(data[100:], crc.crc32c_pure(data[:100])) == crc.crc32c_pure(data)
    if crc.ACCELERATED is not None:
        assert crc.ACCELERATED(data, 0) == crc.crc32c_pure(data)


def test_requests_encode_to_the_worked_examples() -> None:
    secret = "0123456789abcdef0123456789abcdef"
    assert encode_frame(Op.HELLO, 1, hello_body("admin", secret)) == golden("hello")
    # 12.50 goes out in its one encoding, 125 x 10^-1, whatever form it is written in.
    for amount in (Decimal("12.50"), Decimal("12.5"), "12.500"):
        body, tx_ids = submit_body([(EXAMPLE_TX, Transfer("alice", "bob", amount))], 1024)
        assert encode_frame(Op.SUBMIT, 2, body) == golden("submit")
        assert tx_ids == (EXAMPLE_TX,)
    session = Session(5.0)
    session.hello_ok = HelloOk(Role.ADMIN, 1024, 1024)
    session._next_request_id = 3
    assert session.query_account("alice", 0.0)[1] == golden("query-account")
    assert session.query_tx(EXAMPLE_TX, 0.0)[1] == golden("query-tx")
    ping = encode_frame(Op.PING, 6, (0x1122334455667788).to_bytes(8, "little"))
    assert ping == golden("ping")


def test_replies_decode_from_the_worked_examples() -> None:
    assert decode(golden("hello-ok")) == HelloOk(Role.ADMIN, 1024, 1024)
    outcomes = decode(golden("submit-reply"))
    assert isinstance(outcomes, tuple) and len(outcomes) == 1
    outcome = outcomes[0]
    assert isinstance(outcome, Outcome)
    assert (outcome.tx_id, outcome.result, outcome.duplicate, outcome.tx_state) == (
        EXAMPLE_TX, ResultCode.OK, False, TxState.SETTLED,
    )  # fmt: skip
    assert [(b.account_id, b.available_minor, b.ledger_minor) for b in outcome.balances] == [
        (0, 8750, 8750), (1, 1250, 1250),
    ]  # fmt: skip
    account = decode(golden("account"))
    assert isinstance(account, Account)
    assert (account.account_no, account.user_id, account.currency, account.scale) == ("alice", 42, "USD", 2)
    assert (account.kind, account.status) == (AccountKind.USER, AccountStatus.ACTIVE)
    assert account.available == Decimal("87.50") and account.tx_amount_max_minor == 100_000
    assert account.daily_debit_max_minor is None
    assert decode(golden("account-not-found")) is None
    tx = decode(golden("tx"))
    assert isinstance(tx, Tx)
    assert (tx.kind, tx.state, tx.amount_minor, tx.debit, tx.credit) == (
        TxKind.TRANSFER, TxState.SETTLED, 1250, "alice", "bob",
    )  # fmt: skip
    assert tx.history == tuple(TxState)[:6] and tx.linked is None
    assert decode(golden("error")) == ErrorReply(12, "role read may not submit transfer (command 0)")
    assert decode(golden("pong")) == 0x1122334455667788


def test_a_reader_refuses_what_is_not_a_frame() -> None:
    good = golden("pong")
    cases = {
        "magic": b"XDGR" + good[4:],
        "version": good[:4] + b"\x02" + good[5:],
        "checksum": good[:-1] + bytes([good[-1] ^ 1]),
        "request op": good[:5] + b"\x02" + good[6:],
    }
    for what, data in cases.items():
        reader = FrameReader()
        reader.feed(data)
        with pytest.raises(ProtocolError):
            reader.next_frame()
        assert what
    # Whole frames come out of a stream fed byte by byte, and not before.
    reader = FrameReader()
    for byte in golden("tx")[:-1]:
        reader.feed(bytes([byte]))
        assert reader.next_frame() is None
    reader.feed(golden("tx")[-1:])
    assert reader.next_frame() is not None


def test_amounts_are_exact_and_canonical() -> None:
    cases: dict[Decimal | int | str, tuple[int, int]] = {
        Decimal("12.50"): (125, 1),
        Decimal("0.00000001"): (1, 8),
        Decimal("1E+3"): (1000, 0),
        Decimal("-0.10"): (-1, 1),
        Decimal("0.000"): (0, 0),
        7: (7, 0),
        "99999999999999999999999999.99": (9999999999999999999999999999, 2),
    }
    for amount, wire in cases.items():
        assert amount_to_wire(amount) == wire, amount
    for bad in (1.5, True, Decimal("NaN"), Decimal("Infinity"), "1,5", Decimal("1E-29"), 2**127):
        with pytest.raises(InvalidRequest):
            amount_to_wire(bad)  # type: ignore[arg-type]
    assert minor_to_decimal(12345, 2) == Decimal("123.45")
    assert str(minor_to_decimal(-5, 8)) == "-5E-8" and minor_to_decimal(-5, 8) == Decimal("-0.00000005")


def test_account_numbers_are_visible_text() -> None:
    assert account_no_bytes("alice") == b"alice"
    assert account_no_bytes("中文-é_1.x") == "中文-é_1.x".encode()
    for bad in ("", " alice", "al\u00a0ice", "a\u200bb", "x\u202e", "a\tb", "a" * 33, "\u4e2d" * 11):
        with pytest.raises(InvalidRequest):
            account_no_bytes(bad)
    # The table in PROTOCOL.md is the one the client uses.
    text = PROTOCOL_MD.read_text()
    rows = re.findall(r"^\| `U\+([0-9A-F]+)` \| `U\+([0-9A-F]+)` \|", text, re.MULTILINE)
    assert tuple((int(a, 16), int(b, 16)) for a, b in rows) == ACCOUNT_NO_REFUSED


def test_submit_entries_are_checked_before_anything_is_sent() -> None:
    with pytest.raises(InvalidRequest, match="tx_id 0 is reserved"):
        submit_body([(0, Transfer("a", "b", 1))], 10)
    with pytest.raises(InvalidRequest, match="1..=2 commands"):
        submit_body([(n, Transfer("a", "b", 1)) for n in range(1, 4)], 2)
    with pytest.raises(InvalidRequest, match="command 1"):
        submit_body([(1, Transfer("a", "b", 1)), (2, Transfer("a", "b", 0.5))], 10)  # type: ignore[arg-type]


def test_credentials_file_entry_choice(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text("# clients\nbench transact bench-secret-0123456789\n\nops admin ops-secret-0123456789abc\r\n")
    path.chmod(0o644)
    with pytest.raises(InvalidRequest, match="chmod 600"):
        load_credentials(path)
    path.chmod(0o600)
    assert load_credentials(path).client_id == "ops"
    assert load_credentials(path, "bench").secret == "bench-secret-0123456789"
    assert "secret" not in repr(load_credentials(path)).split("client_id")[0]
    assert "ops-secret" not in repr(load_credentials(path))
    store = tmp_path / "store"
    store.write_text("ops admin hmac-sha256 " + "0" * 32 + " " + "1" * 64 + "\n")
    store.chmod(0o600)
    with pytest.raises(InvalidRequest, match="a hash, not a secret"):
        load_credentials(store)


def test_error_codes_are_protocol_md_s() -> None:
    from ledger_client.wire import ErrorCode, error_code_name

    text = PROTOCOL_MD.read_text()
    table = text[text.index("## Error codes") : text.index("## Roles")]
    rows = re.findall(r"^\| (\d+) \| `([a-z_]+)` \|", table, re.MULTILINE)
    assert [(int(code), name) for code, name in rows] == [
        (int(code), code.name.lower()) for code in ErrorCode
    ]
    assert error_code_name(99) == "error code 99"
