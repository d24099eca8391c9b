// A client for ledgerd, written from protocol/PROTOCOL.md.
//
//   const client = await Client.connect({ host: "127.0.0.1", port: 7070 }, { clientId: "admin", secret });
//   const [outcome] = await client.submit([[newTxId(), { type: "Transfer", from: "alice", to: "bob", amount: "12.50" }]]);
//
// Amounts go in as decimal strings (or bigint whole units) and come back as bigint minor units;
// numbers are refused. Errors: Refused (nothing executed), OutcomeUnknown (re-send the same
// commands or look them up), NoAnswer, ConnectionClosed, ...

export { Client } from "./client.js";
export type { Credentials, Options } from "./client.js";
export * from "./errors.js";
export {
  AccountKind,
  AccountStatus,
  ErrorCode,
  FeeKind,
  KIND_NAMES,
  RESULT_NAMES,
  Role,
  TxState,
  amountToWire,
  errorCodeName,
  formatMinor,
  newTxId,
} from "./wire.js";
export type { Account, AmountLike, Balance, Command, Entry, Exposure, HelloOk, Limits, Outcome, Tx, TxIdLike } from "./wire.js";
