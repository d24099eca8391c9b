// The client against a real ledgerd: every command and query, pipelining with Promise.all,
// refusals, and the retry contract (kill -9 then re-send, a silent server, a shutdown).

import assert from "node:assert/strict";
import * as net from "node:net";
import { after, before, test } from "node:test";

import { AccountKind, AccountStatus, AuthFailed, Client, Command, ConnectionClosed, Entry } from "../src/index.js";
import { ErrorCode, FeeKind, InvalidRequest, NoAnswer, OutcomeUnknown, Refused, Role, TxState } from "../src/index.js";
import { formatMinor } from "../src/index.js";
import { HELLO_REQUEST_ID } from "../src/session.js";
import { Op, encodeFrame } from "../src/wire.js";
import { Ledgerd, credentials } from "./ledgerd.js";

const ACCOUNTS: [string, AccountKind][] = [
  ["alice", AccountKind.User], ["bob", AccountKind.User], ["bank", AccountKind.System],
  ["fees", AccountKind.System], ["t1clr", AccountKind.System],
];

const servers: Ledgerd[] = [];
after(async () => {
  for (const server of servers) await server.kill9();
});

async function fresh(): Promise<{ server: Ledgerd; admin: Client }> {
  const server = await Ledgerd.start();
  servers.push(server);
  const admin = await Client.connect(server.address, credentials("admin"));
  const entries: Entry[] = ACCOUNTS.map(([accountNo, kind], index) => [900 + index, { type: "OpenAccount", accountNo, userId: index, currency: "USD", kind }]);
  assert.ok((await admin.submit(entries)).every((outcome) => outcome.ok));
  return { server, admin };
}

async function one(client: Client, txId: number, command: Command): Promise<[string, TxState | null]> {
  const [outcome] = await client.submit([[txId, command]]);
  assert.ok(outcome);
  return [outcome.resultName, outcome.txState];
}

async function names(client: Client, balances: { accountId: number }[]): Promise<string[]> {
  const ids = new Map<number, string>();
  for (const [name] of ACCOUNTS) ids.set((await client.account(name))!.accountId, name);
  return balances.map((balance) => ids.get(balance.accountId)!);
}

let shared: { server: Ledgerd; admin: Client };
before(async () => {
  shared = await fresh();
});

test("every command and query", async () => {
  const { admin } = shared;
  assert.equal(admin.helloOk.role, Role.Admin);
  assert.equal(admin.batchLenMax, 1024);
  assert.ok((await admin.ping()) >= 0);
  assert.deepEqual(await one(admin, 1, { type: "DefineCurrency", code: "XTS", scale: 3 }), ["ok", null]);
  assert.deepEqual(await one(admin, 2, { type: "DefineCurrency", code: "XTS", scale: 3 }), ["ok", null]);
  assert.equal((await one(admin, 3, { type: "DefineCurrency", code: "XTS", scale: 4 }))[0], "currency_exists");
  const [deposit] = await admin.submit([[10, { type: "Deposit", accountNo: "alice", channelNo: "bank", amount: "100.00" }]]);
  assert.ok(deposit);
  assert.equal(deposit.txState, TxState.PendingSettlement);
  assert.deepEqual(await names(admin, deposit.balances), ["bank", "alice"]);
  assert.equal(deposit.balances[1]!.availableMinor, 10_000n);
  assert.equal((await admin.exposure("alice"))!.unsettledMinor, 10_000n);
  assert.deepEqual(await one(admin, 11, { type: "SettleBegin", target: 10 }), ["ok", null]);
  assert.equal((await admin.tx(10))!.state, TxState.Settling);
  assert.deepEqual(await one(admin, 12, { type: "SettleConfirm", target: 10 }), ["ok", null]);
  const alice = (await admin.account("alice"))!;
  assert.equal(formatMinor(alice.ledgerMinor, alice.scale), "100.00");
  assert.equal((await one(admin, 13, { type: "Deposit", accountNo: "alice", channelNo: "bank", amount: "1.001" }))[0], "amount_precision");
  const [transfer] = await admin.submit([[20, { type: "Transfer", from: "alice", to: "bob", amount: "12.50" }]]);
  assert.equal(transfer!.txState, TxState.Settled);
  assert.deepEqual(await names(admin, transfer!.balances), ["alice", "bob"]);
  const [again] = await admin.submit([[20, { type: "Transfer", from: "alice", to: "bob", amount: "12.5" }]]);
  assert.ok(again!.duplicate && again!.ok);
  assert.equal((await one(admin, 20, { type: "Transfer", from: "alice", to: "bob", amount: "12.51" }))[0], "tx_id_conflict");
  assert.deepEqual(await one(admin, 30, { type: "Freeze", accountNo: "alice", amount: "20" }), ["ok", TxState.Frozen]);
  assert.deepEqual(await one(admin, 31, { type: "Capture", hold: 30, to: "bob", amount: "5" }), ["ok", TxState.Settled]);
  assert.deepEqual(await one(admin, 32, { type: "Unfreeze", hold: 30 }), ["ok", null]);
  const released = (await admin.tx(32))!;
  assert.deepEqual([released.kind, released.amountMinor, released.linked], ["Unfreeze", 1_500n, 30n]);
  assert.equal((await admin.tx(30))!.state, TxState.Settled);
  assert.equal((await one(admin, 34, { type: "Freeze", accountNo: "alice", amount: "1", expiresNs: 1n }))[0], "expiry_in_past");
  const laterNs = BigInt(Date.now() + 600_000) * 1_000_000n;
  assert.deepEqual(await one(admin, 35, { type: "Freeze", accountNo: "alice", amount: "1", expiresNs: laterNs }), ["ok", TxState.Frozen]);
  assert.deepEqual(await one(admin, 40, { type: "Withdraw", accountNo: "alice", channelNo: "bank", amount: "10" }), ["ok", TxState.PendingSettlement]);
  assert.equal((await one(admin, 41, { type: "SettleBegin", target: 40 }))[0], "ok");
  assert.equal((await one(admin, 42, { type: "SettleFail", target: 40 }))[0], "ok");
  assert.equal((await admin.tx(40))!.state, TxState.Failed);
  assert.deepEqual(await one(admin, 50, { type: "Refund", original: 20, amount: "2.5" }), ["ok", TxState.Settled]);
  const original = (await admin.tx(20))!;
  assert.deepEqual([original.state, original.refundedMinor], [TxState.Reversed, 250n]);
  assert.equal((await one(admin, 60, { type: "SetFee", kind: FeeKind.Transfer, currency: "USD", feeAccountNo: "fees", fixed: "0.10", rateBps: 0 }))[0], "ok");
  const [paid] = await admin.submit([[61, { type: "Transfer", from: "alice", to: "bob", amount: 1n }]]);
  assert.deepEqual(await names(admin, paid!.balances), ["alice", "bob", "fees"]);
  assert.equal((await one(admin, 62, { type: "SetAccountLimits", accountNo: "bob", limits: { txAmountMax: "5" } }))[0], "ok");
  assert.equal((await admin.account("bob"))!.txAmountMaxMinor, 500n);
  assert.equal((await one(admin, 63, { type: "Transfer", from: "bob", to: "alice", amount: "6" }))[0], "tx_limit_exceeded");
  assert.equal((await one(admin, 64, { type: "SetAccountStatus", accountNo: "bob", status: AccountStatus.DebitFrozen }))[0], "ok");
  assert.equal((await one(admin, 65, { type: "Transfer", from: "bob", to: "alice", amount: "1" }))[0], "account_debit_frozen");
  assert.equal((await one(admin, 66, { type: "SetSettlementCycle", accountNo: "alice", t1ClearingNo: "t1clr" }))[0], "ok");
  assert.equal((await one(admin, 67, { type: "Cutover", businessDate: 20260102 }))[0], "ok");
  const rejected = (await admin.tx(63))!;
  assert.deepEqual([rejected.resultName, rejected.state, rejected.debit], ["tx_limit_exceeded", TxState.Failed, null]);
  assert.equal(await admin.account("nobody"), null);
  assert.equal(await admin.exposure("nobody"), null);
  assert.equal(await admin.tx(123456789n), null);
  assert.equal(await admin.tx(0), null);
});

test("pipelined dependent commands run in order; replies match by request id", async () => {
  const { admin } = await fresh();
  assert.equal((await one(admin, 1, { type: "Deposit", accountNo: "alice", channelNo: "bank", amount: "10" }))[0], "ok");
  const transfers = Array.from({ length: 300 }, (_, n) => admin.submit([[100 + n, { type: "Transfer", from: "alice", to: "bob", amount: "0.01" }]]));
  const queries = Array.from({ length: 20 }, () => admin.account("bob"));
  const outcomes = (await Promise.all(transfers)).map((reply) => reply[0]!);
  assert.ok(outcomes.every((outcome) => outcome.ok));
  assert.deepEqual(outcomes.map((outcome) => outcome.balances[0]!.availableMinor), Array.from({ length: 300 }, (_, n) => BigInt(1000 - n - 1)));
  assert.ok((await Promise.all(queries)).every((account) => account !== null));
  assert.equal(formatMinor((await admin.account("bob"))!.availableMinor, 2), "3.00");
  admin.close();
});

test("refusals say what, and the connection stays usable", async () => {
  const { server } = shared;
  const reader = await Client.connect(server.address, credentials("reader"));
  await assert.rejects(reader.submit([[1, { type: "Transfer", from: "alice", to: "bob", amount: "1" }]]), (error: unknown) => {
    assert.ok(error instanceof Refused);
    assert.equal(error.code, ErrorCode.Forbidden);
    assert.equal(error.serverMessage, "role read may not submit transfer (command 0)");
    return true;
  });
  assert.ok((await reader.account("alice")) !== null);
  await assert.rejects(reader.submit([[2, { type: "Transfer", from: "a b", to: "c", amount: "1" }]]), InvalidRequest);
  await assert.rejects(reader.submit([[3, { type: "Transfer", from: "a", to: "c", amount: 1 as unknown as string }]]), InvalidRequest);
  reader.close();
  await assert.rejects(Client.connect(server.address, { clientId: "reader", secret: "y".repeat(20) }), AuthFailed);
});

test("kill -9 leaves outcomes unknown; re-sending the same commands resolves them", async () => {
  const { server, admin } = await fresh();
  assert.equal((await one(admin, 1, { type: "Deposit", accountNo: "alice", channelNo: "bank", amount: "1000000" }))[0], "ok");
  const writer = await Client.connect(server.address, credentials("writer"), { requestTimeoutMs: 60_000 });
  // Enough work (200 000 transfers) that the kill lands while some of it is still running.
  const batches: Entry[][] = Array.from({ length: 200 }, (_, n) =>
    Array.from({ length: 1_000 }, (_, k): Entry => [10_000 + 1_000 * n + k, { type: "Transfer", from: "alice", to: "bob", amount: "1" }]),
  );
  const replies = batches.map((batch) => writer.submit(batch));
  await Promise.race(replies); // the server is executing them
  await server.kill9();
  const unknown: bigint[][] = [];
  for (const reply of await Promise.allSettled(replies)) {
    if (reply.status === "fulfilled") {
      assert.ok(reply.value.every((outcome) => outcome.ok));
    } else {
      assert.ok(reply.reason instanceof OutcomeUnknown, String(reply.reason));
      unknown.push([...reply.reason.txIds]);
    }
  }
  assert.ok(unknown.length > 0, "the kill came after every reply");
  assert.ok(writer.closed !== null);
  await assert.rejects(writer.ping(), ConnectionClosed);
  await server.spawn();
  const again = await Client.connect(server.address, credentials("writer"));
  for (const txIds of unknown) {
    const outcomes = await again.submit(txIds.map((txId): Entry => [txId, { type: "Transfer", from: "alice", to: "bob", amount: "1" }]));
    assert.ok(outcomes.every((outcome) => outcome.ok));
  }
  // Every batch ran exactly once: nothing lost, nothing twice.
  assert.equal((await again.account("bob"))!.availableMinor, 100n * 200n * 1_000n);
  again.close();
});

test("a silent server's deadline ends every request in flight", async () => {
  const listener = net.createServer((socket) => {
    socket.once("data", () => {
      const body = Buffer.alloc(9);
      body.writeUInt8(2, 0);
      body.writeUInt32LE(8192, 1);
      body.writeUInt32LE(64, 5);
      socket.write(encodeFrame(Op.HelloOk, HELLO_REQUEST_ID, body));
    });
  });
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const port = (listener.address() as net.AddressInfo).port;
  const client = await Client.connect({ host: "127.0.0.1", port }, credentials("admin"), { requestTimeoutMs: 200 });
  assert.equal(client.inFlightMax, 64);
  const started = Date.now();
  const submitted = client.submit([[7, { type: "Transfer", from: "alice", to: "bob", amount: "1" }], [8, { type: "Transfer", from: "alice", to: "bob", amount: "2" }]]);
  const queried = client.tx(7);
  await assert.rejects(submitted, (error: unknown) => {
    assert.ok(error instanceof OutcomeUnknown);
    assert.deepEqual(error.txIds, [7n, 8n]);
    assert.match(error.reason, /within 200 ms/);
    return true;
  });
  await assert.rejects(queried, NoAnswer);
  assert.ok(Date.now() - started >= 150);
  await assert.rejects(client.ping(), ConnectionClosed);
  listener.close();
});

test("a shutdown answers what it read and refuses the rest", async () => {
  const { server, admin } = await fresh();
  assert.equal((await one(admin, 1, { type: "Deposit", accountNo: "alice", channelNo: "bank", amount: "1000000000" }))[0], "ok");
  const writer = await Client.connect(server.address, credentials("writer"));
  const stopped = server.stop();
  const answered: number[] = [];
  const notExecuted: number[] = [];
  for (let txId = 2001; notExecuted.length === 0 && txId < 200_000; txId++) {
    try {
      assert.ok((await writer.submit([[txId, { type: "Transfer", from: "alice", to: "bob", amount: "1" }]]))[0]!.ok);
      answered.push(txId);
    } catch (error) {
      if (error instanceof Refused) assert.equal(error.code, ErrorCode.ShuttingDown);
      else assert.ok(error instanceof ConnectionClosed && /shutting_down/.test(error.reason), String(error));
      notExecuted.push(txId);
    }
  }
  assert.match(writer.closed ?? "", /shutting_down/);
  assert.equal(await stopped, 0);
  await server.spawn();
  const reader = await Client.connect(server.address, credentials("reader"));
  for (const txId of [...answered.slice(-5), ...notExecuted]) {
    assert.equal((await reader.tx(txId)) !== null, answered.includes(txId), String(txId));
  }
  reader.close();
});

after(() => shared.admin.close());
