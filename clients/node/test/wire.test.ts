// The codec against PROTOCOL.md itself: its worked examples byte for byte, its CRC32C check
// value, and the field rules (amounts, account numbers, tx ids). No server needed.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import { crc32c } from "../src/crc32c.js";
import { InvalidRequest, ProtocolError } from "../src/errors.js";
import { Session } from "../src/session.js";
import { ACCOUNT_NO_REFUSED, AccountKind, Account, ErrorReply, FrameReader, HelloOk, Op, Outcome } from "../src/wire.js";
import { Role, Tx, TxState, accountNoBytes, amountToWire, encodeFrame, formatMinor, helloBody } from "../src/wire.js";
import { submitBody } from "../src/wire.js";
import { REPO } from "./ledgerd.js";

const PROTOCOL_MD = readFileSync(path.join(REPO, "protocol", "PROTOCOL.md"), "utf8");
const EXAMPLE_TX = 0x0102030405060708090a0b0c0d0e0f10n;

function golden(name: string): Buffer {
  const start = PROTOCOL_MD.indexOf(`# golden: ${name}\n`);
  assert.ok(start >= 0, name);
  const block = PROTOCOL_MD.slice(start).split("\n```")[0]!.split("\n").slice(1);
  const bytes: number[] = [];
  for (const line of block) {
    const [offset, rest] = [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1)];
    assert.equal(parseInt(offset, 16), bytes.length, line);
    for (const token of rest.split("|")[0]!.trim().split(/\s+/)) bytes.push(parseInt(token, 16));
  }
  return Buffer.from(bytes);
}

function decode(data: Buffer): unknown {
  const reader = new FrameReader();
  reader.feed(data);
  const frame = reader.next();
  assert.ok(frame !== null);
  assert.equal(reader.next(), null);
  return frame.message;
}

test("crc32c check value", () => {
  assert.equal(crc32c(Buffer.from("123456789")), 0xe3069283);
  const data = Buffer.alloc(700, 7);
  assert.equal(crc32c(data.subarray(300), crc32c(data.subarray(0, 300))), crc32c(data));
});

test("requests encode to the worked examples", () => {
  assert.deepEqual(encodeFrame(Op.Hello, 1n, helloBody("admin", "0123456789abcdef0123456789abcdef")), golden("hello"));
  for (const amount of ["12.50", "12.5", "12.500"]) {
    const { body, txIds } = submitBody([[EXAMPLE_TX, { type: "Transfer", from: "alice", to: "bob", amount }]], 1024);
    assert.deepEqual(encodeFrame(Op.Submit, 2n, body), golden("submit"), amount);
    assert.deepEqual(txIds, [EXAMPLE_TX]);
  }
  const session = new Session(5000);
  session.helloOk = { role: Role.Admin, batchLenMax: 1024, inFlightMax: 1024 };
  session.ping(0); // request 2
  assert.deepEqual(session.queryAccount("alice", 0)[1], golden("query-account")); // request 3
  assert.deepEqual(session.queryTx(EXAMPLE_TX, 0)[1], golden("query-tx")); // request 4
  const payload = Buffer.alloc(8);
  payload.writeBigUInt64LE(0x1122334455667788n);
  assert.deepEqual(encodeFrame(Op.Ping, 6n, payload), golden("ping"));
});

test("replies decode from the worked examples", () => {
  assert.deepEqual(decode(golden("hello-ok")) as HelloOk, { role: Role.Admin, batchLenMax: 1024, inFlightMax: 1024 });
  const [outcome] = decode(golden("submit-reply")) as Outcome[];
  assert.ok(outcome);
  assert.equal(outcome.txId, EXAMPLE_TX);
  assert.equal(outcome.resultName, "ok");
  assert.equal(outcome.txState, TxState.Settled);
  assert.deepEqual(outcome.balances.map((b) => [b.accountId, b.availableMinor, b.ledgerMinor]), [[0, 8750n, 8750n], [1, 1250n, 1250n]]);
  const account = decode(golden("account")) as Account;
  assert.equal(account.accountNo, "alice");
  assert.equal(account.kind, AccountKind.User);
  assert.equal(formatMinor(account.availableMinor, account.scale), "87.50");
  assert.equal(account.txAmountMaxMinor, 100_000n);
  assert.equal(account.dailyDebitMaxMinor, null);
  assert.equal(decode(golden("account-not-found")), null);
  const tx = decode(golden("tx")) as Tx;
  assert.deepEqual([tx.kind, tx.state, tx.amountMinor, tx.debit, tx.credit, tx.linked], ["Transfer", TxState.Settled, 1250n, "alice", "bob", null]);
  assert.deepEqual(tx.history, [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(decode(golden("error")) as ErrorReply, { code: 12, message: "role read may not submit transfer (command 0)" });
  assert.equal(decode(golden("pong")), 0x1122334455667788n);
});

test("a reader refuses what is not a frame, and waits for whole frames", () => {
  const good = golden("pong");
  for (const [offset, value] of [[0, 0x58], [4, 2], [23, good[23]! ^ 1], [5, 0x02]] as const) {
    const bad = Buffer.from(good);
    bad[offset] = value;
    const reader = new FrameReader();
    reader.feed(bad);
    assert.throws(() => reader.next(), ProtocolError);
  }
  const reader = new FrameReader();
  const tx = golden("tx");
  for (let i = 0; i < tx.length - 1; i++) {
    reader.feed(tx.subarray(i, i + 1));
    assert.equal(reader.next(), null);
  }
  reader.feed(tx.subarray(tx.length - 1));
  assert.ok(reader.next() !== null);
});

test("amounts are exact and canonical, never floats", () => {
  const cases: [string | bigint, bigint, number][] = [
    ["12.50", 125n, 1], ["0.00000001", 1n, 8], ["-0.10", -1n, 1], ["0.000", 0n, 0], [1000n, 1000n, 0],
    ["99999999999999999999999999.99", 9999999999999999999999999999n, 2],
  ];
  for (const [amount, mantissa, scale] of cases) assert.deepEqual(amountToWire(amount), { mantissa, scale }, String(amount));
  for (const bad of [1.5, "1,5", "1e3", ".5", "5.", "0." + "0".repeat(28) + "1", 2n ** 127n]) {
    assert.throws(() => amountToWire(bad as string), InvalidRequest, String(bad));
  }
  assert.equal(formatMinor(12345n, 2), "123.45");
  assert.equal(formatMinor(-5n, 8), "-0.00000005");
  assert.equal(formatMinor(7n, 0), "7");
});

test("account numbers are visible text; the table is PROTOCOL.md's", () => {
  assert.deepEqual(accountNoBytes("中文-é_1.x"), Buffer.from("中文-é_1.x"));
  for (const bad of ["", " alice", "al\u00a0ice", "a\u200bb", "x\u202e", "a\tb", "a".repeat(33), "\u4e2d".repeat(11)]) {
    assert.throws(() => accountNoBytes(bad), InvalidRequest, JSON.stringify(bad));
  }
  const rows = [...PROTOCOL_MD.matchAll(/^\| `U\+([0-9A-F]+)` \| `U\+([0-9A-F]+)` \|/gm)].map((m) => [parseInt(m[1]!, 16), parseInt(m[2]!, 16)]);
  assert.deepEqual(rows, ACCOUNT_NO_REFUSED.map(([a, b]) => [a, b]));
});

test("submit entries are checked before anything is sent", () => {
  assert.throws(() => submitBody([[0n, { type: "Transfer", from: "a", to: "b", amount: "1" }]], 10), /tx id 0 is reserved/);
  const many = [1, 2, 3].map((n) => [n, { type: "Transfer", from: "a", to: "b", amount: "1" }] as const);
  assert.throws(() => submitBody(many, 2), /1..=2 commands/);
  assert.throws(() => submitBody([[1, { type: "Transfer", from: "a", to: "b", amount: 0.5 as unknown as string }]], 10), /command 0: amounts/);
});

test("error codes are PROTOCOL.md's", async () => {
  const { errorCodeName } = await import("../src/wire.js");
  const table = PROTOCOL_MD.slice(PROTOCOL_MD.indexOf("## Error codes"), PROTOCOL_MD.indexOf("## Roles"));
  const rows = [...table.matchAll(/^\| (\d+) \| `([a-z_]+)` \|/gm)].map((m) => [Number(m[1]), m[2]]);
  assert.ok(rows.length >= 17);
  for (const [code, name] of rows) assert.equal(errorCodeName(code as number), name);
  assert.equal(errorCodeName(rows.length + 1), `error code ${rows.length + 1}`);
});
