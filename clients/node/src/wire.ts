// The wire format of protocol/PROTOCOL.md: enumerations, limits, commands, replies, and the
// encoding of requests and decoding of replies. No I/O here.
//
// Amounts are exact: a decimal string ("12.50") or a bigint (whole units) goes out as its one
// canonical (mantissa, scale), without trailing zero decimals; balances come back as bigint
// minor units (`*Minor`), formatted with `formatMinor` once the scale is known. Numbers
// (floats) are refused.

import { randomUUID } from "node:crypto";

import { crc32c } from "./crc32c.js";
import { InvalidRequest, ProtocolError } from "./errors.js";

export const MAGIC = Buffer.from("LDGR", "ascii");
export const PROTOCOL_VERSION = 1;
export const HEADER_LEN_BYTES = 24;
export const BODY_LEN_BYTES_MAX = 4 * 1024 * 1024;
export const BATCH_LEN_MAX = 8192;
export const COMMAND_BODY_LEN_BYTES_MAX = 256;
export const ACCOUNT_NO_LEN_BYTES_MAX = 32;
export const AMOUNT_SCALE_MAX = 28;
export const ERROR_MESSAGE_LEN_BYTES_MAX = 1024;
export const IN_FLIGHT_MAX = 65536;
const TX_STATE_NONE = 0xff;
const U64_MAX = (1n << 64n) - 1n;
const U128_MAX = (1n << 128n) - 1n;
const I128_MIN = -(1n << 127n);
const I128_MAX = (1n << 127n) - 1n;

export enum Op {
  Hello = 0x01, Ping = 0x02, Submit = 0x03, QueryAccount = 0x04, QueryTx = 0x05,
  QueryExposure = 0x06, HelloOk = 0x81, Pong = 0x82, SubmitReply = 0x83, Account = 0x84,
  Tx = 0x85, Exposure = 0x86, Error = 0xff
}

/** ERROR codes; a code this client does not know is kept as a number, treated like Internal. */
export enum ErrorCode {
  MalformedFrame = 1, UnsupportedVersion = 2, FrameTooLarge = 3, UnknownOperation = 4,
  UnexpectedOperation = 5, MalformedBody = 6, BadAccountNo = 7, MalformedAmount = 8,
  BatchTooLarge = 9, NotAuthenticated = 10, AuthFailed = 11, Forbidden = 12, Busy = 13,
  ShuttingDown = 14, Internal = 15, NotPrimary = 16, Unavailable = 17
}

const ERROR_NAMES = [
  "", "malformed_frame", "unsupported_version", "frame_too_large", "unknown_operation",
  "unexpected_operation", "malformed_body", "bad_account_no", "malformed_amount",
  "batch_too_large", "not_authenticated", "auth_failed", "forbidden", "busy", "shutting_down",
  "internal", "not_primary", "unavailable",
];

/** `forbidden` for 12, `error code 99` for a code this client does not know. */
export function errorCodeName(code: number): string {
  return code >= 1 && code < ERROR_NAMES.length ? ERROR_NAMES[code]! : `error code ${code}`;
}

/** Whether a SUBMIT refused with `code` may have executed some of its commands. */
export function outcomeUnknown(code: number): boolean {
  return code === ErrorCode.Internal || !(code >= 1 && code < ERROR_NAMES.length);
}

export enum Role { Read = 0, Transact = 1, Admin = 2 }
export enum AccountKind { User = 0, System = 1, Risk = 2 }
export enum AccountStatus { Active = 0, DebitFrozen = 1, Closed = 2 }
export enum FeeKind { Transfer = 0, Capture = 1, Withdraw = 2 }

export enum TxState {
  Created = 0, RiskChecked = 1, Frozen = 2, PendingSettlement = 3, Settling = 4, Settled = 5,
  Failed = 6, Reversed = 7
}

/** Result codes, stable; 0 (`ok`) is the only success. Names as in PROTOCOL.md. */
export const RESULT_NAMES = [
  "ok", "tx_id_conflict", "account_not_found", "account_exists", "currency_mismatch",
  "currency_unknown", "currency_exists", "invalid_scale", "amount_not_positive",
  "amount_precision", "amount_too_large", "overflow", "insufficient_funds", "tx_limit_exceeded",
  "daily_limit_exceeded", "account_debit_frozen", "account_closed", "account_not_empty",
  "same_account", "not_channel_account", "hold_not_found", "hold_released", "hold_insufficient",
  "expiry_in_past", "tx_not_found", "illegal_transition", "refund_exceeds_original",
  "not_refundable", "risk_account_missing", "risk_account_exists", "invalid_status_change",
  "capacity_exceeded", "exposure_limit_exceeded", "fee_invalid", "settlement_cycle_invalid",
  "business_date_closed", "too_many_holds", "too_many_pending_settlements",
] as const;
export type ResultName = (typeof RESULT_NAMES)[number];

/** Transaction kinds: the command's variant index. */
export const KIND_NAMES = [
  "DefineCurrency", "OpenAccount", "SetAccountStatus", "SetAccountLimits", "Deposit", "Withdraw",
  "Transfer", "Freeze", "Unfreeze", "Capture", "SettleBegin", "SettleConfirm", "SettleFail",
  "Refund", "SetFee", "SetSettlementCycle", "Cutover",
] as const;
export type KindName = (typeof KIND_NAMES)[number];

// ---- field rules ----

/** Code points an account number in a request may not contain (PROTOCOL.md, "Conventions"). */
export const ACCOUNT_NO_REFUSED: readonly (readonly [number, number])[] = [
  [0x0000, 0x0020], [0x007f, 0x00a0], [0x00ad, 0x00ad], [0x061c, 0x061c], [0x1680, 0x1680],
  [0x180e, 0x180e], [0x2000, 0x200f], [0x2028, 0x202f], [0x205f, 0x2064], [0x2066, 0x206f],
  [0x3000, 0x3000], [0xfeff, 0xfeff], [0xfff9, 0xfffb], [0x13430, 0x1343f], [0x1bca0, 0x1bca3],
  [0x1d173, 0x1d17a], [0xe0001, 0xe0001], [0xe0020, 0xe007f],
];

/** The bytes of a request's account number: 1..=32 bytes of UTF-8, visible text. */
export function accountNoBytes(accountNo: string): Buffer {
  if (typeof accountNo !== "string") {
    throw new InvalidRequest(`an account number is a string, not ${typeof accountNo}`);
  }
  for (const char of accountNo) {
    const code = char.codePointAt(0)!;
    if (ACCOUNT_NO_REFUSED.some(([first, last]) => first <= code && code <= last)) {
      const hex = code.toString(16).toUpperCase().padStart(4, "0");
      throw new InvalidRequest(
        `account number ${JSON.stringify(accountNo)} contains U+${hex}, a control character, a space or an invisible character`,
      );
    }
    if (code >= 0xd800 && code <= 0xdfff) {
      throw new InvalidRequest(`account number ${JSON.stringify(accountNo)} is not valid UTF-16`);
    }
  }
  const bytes = Buffer.from(accountNo, "utf8");
  if (bytes.length < 1 || bytes.length > ACCOUNT_NO_LEN_BYTES_MAX) {
    throw new InvalidRequest(`account number ${JSON.stringify(accountNo)} is ${bytes.length} bytes of UTF-8, not 1..=32`);
  }
  return bytes;
}

/** A currency code: 3..=8 upper-case ASCII letters or digits, zero-padded to 8 bytes. */
export function currencyBytes(code: string): Buffer {
  if (typeof code !== "string" || !/^[A-Z0-9]{3,8}$/.test(code)) {
    throw new InvalidRequest(`currency code ${JSON.stringify(code)} is not 3..=8 upper-case ASCII letters or digits`);
  }
  const out = Buffer.alloc(8);
  out.write(code, "ascii");
  return out;
}

/** A tx id: a bigint (or a safe integer number) in 1..2^128, or a UUID string; never 0. */
export type TxIdLike = bigint | number | string;

export function txIdBigint(txId: TxIdLike): bigint {
  let value: bigint;
  if (typeof txId === "bigint") {
    value = txId;
  } else if (typeof txId === "number" && Number.isSafeInteger(txId)) {
    value = BigInt(txId);
  } else if (typeof txId === "string" && /^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$/.test(txId)) {
    value = BigInt("0x" + txId.replaceAll("-", ""));
  } else {
    throw new InvalidRequest(`tx id ${String(txId)} is not a bigint, a safe integer or a UUID`);
  }
  if (value === 0n) throw new InvalidRequest("tx id 0 is reserved (it names no transaction)");
  if (value < 0n || value > U128_MAX) throw new InvalidRequest(`tx id ${value} is not a 128-bit unsigned number`);
  return value;
}

/** A fresh random tx id (the 128 bits of a UUID v4; never 0). */
export function newTxId(): bigint {
  return BigInt("0x" + randomUUID().replaceAll("-", ""));
}

/** An amount: a decimal string (`"12.50"`, `"-3"`) or a bigint of whole units. Never a number. */
export type AmountLike = string | bigint;

/** The one wire encoding of an amount: exact, canonical (no trailing zero decimal). */
export function amountToWire(amount: AmountLike): { mantissa: bigint; scale: number } {
  let mantissa: bigint;
  let scale: number;
  if (typeof amount === "bigint") {
    [mantissa, scale] = [amount, 0];
  } else if (typeof amount === "string") {
    const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(amount);
    if (!match) throw new InvalidRequest(`${JSON.stringify(amount)} is not a decimal amount (digits, one optional '.', optional leading '-')`);
    const fraction = match[3] ?? "";
    mantissa = BigInt(match[2]! + fraction) * (match[1] ? -1n : 1n);
    scale = fraction.length;
  } else {
    throw new InvalidRequest(`amounts are decimal strings or bigints, never ${typeof amount}`);
  }
  while (scale > 0 && mantissa % 10n === 0n) {
    mantissa /= 10n;
    scale -= 1;
  }
  if (mantissa === 0n) scale = 0;
  if (scale > AMOUNT_SCALE_MAX) throw new InvalidRequest(`amount ${amount} has ${scale} decimals; at most 28 can be sent`);
  if (mantissa < I128_MIN || mantissa > I128_MAX) throw new InvalidRequest(`amount ${amount} does not fit 128 bits`);
  return { mantissa, scale };
}

/** Minor units as a decimal string with exactly `scale` decimals (`12345n, 2` -> `"123.45"`). */
export function formatMinor(minor: bigint, scale: number): string {
  const sign = minor < 0n ? "-" : "";
  const digits = (minor < 0n ? -minor : minor).toString().padStart(scale + 1, "0");
  if (scale === 0) return sign + digits;
  return `${sign}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

// ---- commands ----

export interface Limits {
  txAmountMax?: AmountLike | null;
  dailyDebitMax?: AmountLike | null;
  exposureMax?: AmountLike | null;
}

/** One command per `CommandBody` variant (PROTOCOL.md, SUBMIT). */
export type Command =
  | { type: "DefineCurrency"; code: string; scale: number }
  | { type: "OpenAccount"; accountNo: string; userId: bigint | number; currency: string; kind?: AccountKind; limits?: Limits }
  | { type: "SetAccountStatus"; accountNo: string; status: AccountStatus }
  | { type: "SetAccountLimits"; accountNo: string; limits?: Limits }
  | { type: "Deposit"; accountNo: string; channelNo: string; amount: AmountLike }
  | { type: "Withdraw"; accountNo: string; channelNo: string; amount: AmountLike }
  | { type: "Transfer"; from: string; to: string; amount: AmountLike }
  | { type: "Freeze"; accountNo: string; amount: AmountLike; expiresNs?: bigint | null }
  | { type: "Unfreeze"; hold: TxIdLike }
  | { type: "Capture"; hold: TxIdLike; to: string; amount: AmountLike }
  | { type: "SettleBegin"; target: TxIdLike }
  | { type: "SettleConfirm"; target: TxIdLike }
  | { type: "SettleFail"; target: TxIdLike }
  | { type: "Refund"; original: TxIdLike; amount: AmountLike }
  | { type: "SetFee"; kind: FeeKind; currency: string; feeAccountNo: string; fixed: AmountLike; rateBps: number }
  | { type: "SetSettlementCycle"; accountNo: string; t1ClearingNo?: string | null }
  | { type: "Cutover"; businessDate: number };

/** Little-endian bytes, appended in order. */
class Writer {
  private readonly parts: Buffer[] = [];

  bytes(data: Uint8Array): this {
    this.parts.push(Buffer.from(data));
    return this;
  }
  u8(value: number): this {
    return this.bytes(Uint8Array.of(value));
  }
  u16(value: number): this {
    const out = Buffer.alloc(2);
    out.writeUInt16LE(value);
    return this.bytes(out);
  }
  u32(value: number, what = "value"): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new InvalidRequest(`${what} ${value} is not a u32`);
    const out = Buffer.alloc(4);
    out.writeUInt32LE(value);
    return this.bytes(out);
  }
  u64(value: bigint | number, what = "value"): this {
    const big = typeof value === "number" && Number.isSafeInteger(value) ? BigInt(value) : value;
    if (typeof big !== "bigint" || big < 0n || big > U64_MAX) throw new InvalidRequest(`${what} ${String(value)} is not a u64`);
    const out = Buffer.alloc(8);
    out.writeBigUInt64LE(big);
    return this.bytes(out);
  }
  u128(value: bigint): this {
    return this.u64(value & U64_MAX).u64(value >> 64n);
  }
  i128(value: bigint): this {
    return this.u128(BigInt.asUintN(128, value));
  }
  accountNo(accountNo: string): this {
    const bytes = accountNoBytes(accountNo);
    return this.u8(bytes.length).bytes(bytes);
  }
  amount(amount: AmountLike): this {
    const { mantissa, scale } = amountToWire(amount);
    return this.i128(mantissa).u8(scale);
  }
  optionalAmount(amount: AmountLike | null | undefined): this {
    return amount == null ? this.u8(0) : this.u8(1).amount(amount);
  }
  txId(txId: TxIdLike): this {
    return this.u128(txIdBigint(txId));
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function variantOf(type: KindName): number {
  return KIND_NAMES.indexOf(type);
}

function enumValue<T extends number>(value: T, names: object, what: string): number {
  if (!Object.values(names).includes(value)) throw new InvalidRequest(`${what} ${String(value)} is not valid`);
  return value;
}

/** The bincode body of one command (PROTOCOL.md's variants table). */
export function encodeCommand(command: Command): Buffer {
  const out = new Writer().u32(variantOf(command.type));
  switch (command.type) {
    case "DefineCurrency":
      if (!Number.isInteger(command.scale) || command.scale < 0 || command.scale > 255) {
        throw new InvalidRequest(`scale ${command.scale} is not a u8`);
      }
      return out.bytes(currencyBytes(command.code)).u8(command.scale).done();
    case "OpenAccount":
      out.accountNo(command.accountNo).u64(command.userId, "userId").bytes(currencyBytes(command.currency));
      out.u32(enumValue(command.kind ?? AccountKind.User, AccountKind, "kind"));
      return limits(out, command.limits).done();
    case "SetAccountStatus":
      return out.accountNo(command.accountNo).u32(enumValue(command.status, AccountStatus, "status")).done();
    case "SetAccountLimits":
      return limits(out.accountNo(command.accountNo), command.limits).done();
    case "Deposit":
    case "Withdraw":
      return out.accountNo(command.accountNo).accountNo(command.channelNo).amount(command.amount).done();
    case "Transfer":
      return out.accountNo(command.from).accountNo(command.to).amount(command.amount).done();
    case "Freeze":
      out.accountNo(command.accountNo).amount(command.amount);
      return (command.expiresNs == null ? out.u8(0) : out.u8(1).u64(command.expiresNs, "expiresNs")).done();
    case "Unfreeze":
      return out.txId(command.hold).done();
    case "Capture":
      return out.txId(command.hold).accountNo(command.to).amount(command.amount).done();
    case "SettleBegin":
    case "SettleConfirm":
    case "SettleFail":
      return out.txId(command.target).done();
    case "Refund":
      return out.txId(command.original).amount(command.amount).done();
    case "SetFee":
      out.u32(enumValue(command.kind, FeeKind, "fee kind")).bytes(currencyBytes(command.currency));
      return out.accountNo(command.feeAccountNo).amount(command.fixed).u32(command.rateBps, "rateBps").done();
    case "SetSettlementCycle":
      out.accountNo(command.accountNo);
      return (command.t1ClearingNo == null ? out.u8(0) : out.u8(1).accountNo(command.t1ClearingNo)).done();
    case "Cutover":
      return out.u32(command.businessDate, "businessDate").done();
    default: {
      const unknown: never = command;
      throw new InvalidRequest(`not a command: ${JSON.stringify(unknown)}`);
    }
  }
}

function limits(out: Writer, given: Limits | undefined): Writer {
  return out
    .optionalAmount(given?.txAmountMax)
    .optionalAmount(given?.dailyDebitMax)
    .optionalAmount(given?.exposureMax);
}

export type Entry = readonly [TxIdLike, Command];

/** The body of a SUBMIT and its tx ids, in order. */
export function submitBody(entries: readonly Entry[], batchLenMax: number): { body: Buffer; txIds: bigint[] } {
  if (!Array.isArray(entries) || entries.length < 1 || entries.length > batchLenMax) {
    throw new InvalidRequest(`a SUBMIT holds 1..=${batchLenMax} commands, not ${entries?.length}`);
  }
  const out = new Writer().u32(entries.length);
  const txIds: bigint[] = [];
  entries.forEach(([txId, command], index) => {
    try {
      const id = txIdBigint(txId);
      const body = encodeCommand(command);
      if (body.length > COMMAND_BODY_LEN_BYTES_MAX) throw new InvalidRequest("its body is above 256 bytes");
      out.u128(id).u16(body.length).bytes(body);
      txIds.push(id);
    } catch (error) {
      if (error instanceof InvalidRequest) throw new InvalidRequest(`command ${index}: ${error.message}`);
      throw error;
    }
  });
  return { body: out.done(), txIds };
}

export function helloBody(clientId: string, secret: string): Buffer {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(clientId)) throw new InvalidRequest("a client id is 1..=64 of A-Z a-z 0-9 . _ -");
  if (!/^[!-~]{16,128}$/.test(secret)) throw new InvalidRequest("a secret is 16..=128 printable ASCII characters without space");
  return new Writer().u8(clientId.length).bytes(Buffer.from(clientId, "ascii")).u8(secret.length).bytes(Buffer.from(secret, "ascii")).done();
}

export function accountQueryBody(accountNo: string): Buffer {
  return new Writer().accountNo(accountNo).done();
}

/** QUERY_TX's body; 0 is allowed here (it names no transaction: the answer is "not found"). */
export function txQueryBody(txId: TxIdLike): Buffer {
  return txId === 0 || txId === 0n ? Buffer.alloc(16) : new Writer().txId(txId).done();
}

/** A whole frame: the 24-byte header (CRC32C of bytes 0..20 then the body), then `body`. */
export function encodeFrame(op: Op, requestId: bigint, body: Uint8Array): Buffer {
  if (body.length > BODY_LEN_BYTES_MAX) throw new InvalidRequest(`a body of ${body.length} bytes is above ${BODY_LEN_BYTES_MAX}`);
  const header = Buffer.alloc(HEADER_LEN_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt8(PROTOCOL_VERSION, 4);
  header.writeUInt8(op, 5);
  header.writeBigUInt64LE(requestId, 8);
  header.writeUInt32LE(body.length, 16);
  header.writeUInt32LE(crc32c(body, crc32c(header.subarray(0, 20))), 20);
  return Buffer.concat([header, body]);
}

// ---- replies ----

export interface HelloOk { role: Role; batchLenMax: number; inFlightMax: number }

export interface Balance { accountId: number; availableMinor: bigint; frozenMinor: bigint; ledgerMinor: bigint }

export interface Outcome {
  txId: bigint;
  /** The result code; `resultName` says it in PROTOCOL.md's words. */
  result: number;
  resultName: ResultName;
  ok: boolean;
  duplicate: boolean;
  txState: TxState | null;
  balances: Balance[];
}

export interface Account {
  accountId: number;
  accountNo: string;
  userId: bigint;
  currency: string;
  scale: number;
  kind: AccountKind;
  status: AccountStatus;
  availableMinor: bigint;
  frozenMinor: bigint;
  ledgerMinor: bigint;
  txAmountMaxMinor: bigint | null;
  dailyDebitMaxMinor: bigint | null;
}

export interface Tx {
  txId: bigint;
  kind: KindName;
  result: number;
  resultName: ResultName;
  state: TxState | null;
  amountMinor: bigint;
  refundedMinor: bigint;
  heldMinor: bigint;
  capturedMinor: bigint;
  linked: bigint | null;
  history: TxState[];
  debit: string | null;
  credit: string | null;
}

export interface Exposure {
  accountNo: string;
  currency: string;
  scale: number;
  unsettledMinor: bigint;
  exposureMinor: bigint;
  exposureMaxMinor: bigint | null;
}

export interface ErrorReply { code: number; message: string }

export type Message = HelloOk | bigint | Outcome[] | Account | Tx | Exposure | ErrorReply | null;

export interface Frame { op: Op; requestId: bigint; message: Message }

/** Reads fixed-width little-endian fields off a body; running out is a ProtocolError. */
class Cursor {
  private pos = 0;
  constructor(
    private readonly data: Buffer,
    private readonly op: string,
  ) {}

  take(length: number): Buffer {
    if (this.pos + length > this.data.length) throw new ProtocolError(`${this.op} body is truncated`);
    const chunk = this.data.subarray(this.pos, this.pos + length);
    this.pos += length;
    return chunk;
  }
  u8(): number {
    return this.take(1).readUInt8(0);
  }
  u16(): number {
    return this.take(2).readUInt16LE(0);
  }
  u32(): number {
    return this.take(4).readUInt32LE(0);
  }
  u64(): bigint {
    return this.take(8).readBigUInt64LE(0);
  }
  u128(): bigint {
    const low = this.u64();
    return low | (this.u64() << 64n);
  }
  i128(): bigint {
    return BigInt.asIntN(128, this.u128());
  }
  text(length: number, what: string): string {
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(this.take(length));
    } catch (error) {
      if (error instanceof ProtocolError) throw error;
      throw new ProtocolError(`${this.op}: ${what} is not UTF-8`);
    }
  }
  invalid(what: string, value: number | bigint): ProtocolError {
    return new ProtocolError(`${this.op} body: ${what} = ${value} is not allowed`);
  }
  oneOf(value: number, count: number, what: string): number {
    if (value >= count) throw this.invalid(what, value);
    return value;
  }
  found(): boolean {
    return this.oneOf(this.u8(), 2, "found") === 1;
  }
  txState(): TxState | null {
    const raw = this.u8();
    return raw === TX_STATE_NONE ? null : (this.oneOf(raw, 8, "tx_state") as TxState);
  }
  result(): number {
    return this.oneOf(this.u8(), RESULT_NAMES.length, "result");
  }
  currency(): string {
    const code = this.take(8).toString("latin1").replace(/\0+$/, "");
    if (!/^[A-Z0-9]{3,8}$/.test(code)) throw this.invalid("currency length", code.length);
    return code;
  }
  optional(present: boolean, what: string): bigint | null {
    const value = this.i128();
    if (!present && value !== 0n) throw this.invalid(what, value);
    return present ? value : null;
  }
  accountNo(length: number): string {
    if (length < 1 || length > ACCOUNT_NO_LEN_BYTES_MAX) throw this.invalid("account number length", length);
    return this.text(length, "account number");
  }
  flags(allowed: number, what: string): number {
    const flags = this.u8();
    if (flags & ~allowed) throw this.invalid(what, flags);
    return flags;
  }
  finish(): void {
    if (this.pos !== this.data.length) throw new ProtocolError(`${this.op} body has ${this.data.length - this.pos} trailing bytes`);
  }
}

function decodeSubmitReply(c: Cursor): Outcome[] {
  const count = c.u32();
  if (count < 1 || count > BATCH_LEN_MAX) throw c.invalid("count", count);
  const outcomes: Outcome[] = [];
  for (let i = 0; i < count; i++) {
    const txId = c.u128();
    const result = c.result();
    const duplicate = c.flags(1, "flags") === 1;
    const txState = c.txState();
    const balancesLen = c.u8();
    if (balancesLen > 3) throw c.invalid("balances_len", balancesLen);
    const balances: Balance[] = [];
    for (let b = 0; b < balancesLen; b++) {
      balances.push({ accountId: c.u32(), availableMinor: c.i128(), frozenMinor: c.i128(), ledgerMinor: c.i128() });
    }
    outcomes.push({ txId, result, resultName: RESULT_NAMES[result]!, ok: result === 0, duplicate, txState, balances });
  }
  return outcomes;
}

function decodeAccount(c: Cursor): Account | null {
  if (!c.found()) return null;
  const accountId = c.u32();
  const userId = c.u64();
  const currency = c.currency();
  const scale = c.u8();
  const kind = c.oneOf(c.u8(), 3, "kind") as AccountKind;
  const status = c.oneOf(c.u8(), 3, "status") as AccountStatus;
  const [availableMinor, frozenMinor, ledgerMinor] = [c.i128(), c.i128(), c.i128()];
  const flags = c.flags(0b11, "limit flags");
  const txAmountMaxMinor = c.optional((flags & 1) !== 0, "tx_amount_max_minor");
  const dailyDebitMaxMinor = c.optional((flags & 2) !== 0, "daily_debit_max_minor");
  const accountNo = c.accountNo(c.u8());
  return { accountId, accountNo, userId, currency, scale, kind, status, availableMinor, frozenMinor, ledgerMinor, txAmountMaxMinor, dailyDebitMaxMinor };
}

function decodeTx(c: Cursor): Tx | null {
  if (!c.found()) return null;
  const txId = c.u128();
  const kind = KIND_NAMES[c.oneOf(c.u8(), KIND_NAMES.length, "kind")]!;
  const result = c.result();
  const state = c.txState();
  const linkedPresent = c.flags(1, "flags") === 1;
  const [amountMinor, refundedMinor, heldMinor, capturedMinor] = [c.i128(), c.i128(), c.i128(), c.i128()];
  const linkedRaw = c.u128();
  if (!linkedPresent && linkedRaw !== 0n) throw c.invalid("linked", linkedRaw);
  const [historyLen, debitLen, creditLen] = [c.u8(), c.u8(), c.u8()];
  if (historyLen > 8) throw c.invalid("history_len", historyLen);
  const history: TxState[] = [];
  for (let i = 0; i < historyLen; i++) history.push(c.oneOf(c.u8(), 8, "history") as TxState);
  const debit = debitLen ? c.accountNo(debitLen) : null;
  const credit = creditLen ? c.accountNo(creditLen) : null;
  const linked = linkedPresent ? linkedRaw : null;
  return { txId, kind, result, resultName: RESULT_NAMES[result]!, state, amountMinor, refundedMinor, heldMinor, capturedMinor, linked, history, debit, credit };
}

function decodeExposure(c: Cursor): Exposure | null {
  if (!c.found()) return null;
  const currency = c.currency();
  const scale = c.u8();
  const [unsettledMinor, exposureMinor] = [c.i128(), c.i128()];
  const flags = c.flags(1, "limit flags");
  const exposureMaxMinor = c.optional(flags === 1, "exposure_max_minor");
  return { accountNo: c.accountNo(c.u8()), currency, scale, unsettledMinor, exposureMinor, exposureMaxMinor };
}

function decodeHelloOk(c: Cursor): HelloOk {
  const role = c.oneOf(c.u8(), 3, "role") as Role;
  const batchLenMax = c.u32();
  const inFlightMax = c.u32();
  if (batchLenMax < 1 || batchLenMax > BATCH_LEN_MAX) throw c.invalid("batch_len_max", batchLenMax);
  if (inFlightMax < 1 || inFlightMax > IN_FLIGHT_MAX) throw c.invalid("in_flight_max", inFlightMax);
  return { role, batchLenMax, inFlightMax };
}

function decodeError(c: Cursor): ErrorReply {
  const code = c.u16();
  const length = c.u16();
  if (length > ERROR_MESSAGE_LEN_BYTES_MAX) throw c.invalid("message_len", length);
  return { code, message: c.text(length, "message") };
}

/** The body of a reply frame of `op`, decoded and checked. */
export function decodeReply(op: Op, body: Buffer): Message {
  const c = new Cursor(body, Op[op] ?? String(op));
  let message: Message;
  switch (op) {
    case Op.HelloOk: message = decodeHelloOk(c); break;
    case Op.Pong: message = c.u64(); break;
    case Op.SubmitReply: message = decodeSubmitReply(c); break;
    case Op.Account: message = decodeAccount(c); break;
    case Op.Tx: message = decodeTx(c); break;
    case Op.Exposure: message = decodeExposure(c); break;
    case Op.Error: message = decodeError(c); break;
    default: throw new ProtocolError(`the server sent ${Op[op]}, a request op`);
  }
  c.finish();
  return message;
}

/** Splits the server's byte stream into frames; any error is a ProtocolError (stop reading). */
export class FrameReader {
  private buffer: Buffer = Buffer.alloc(0);

  feed(data: Buffer): void {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, data]) : data;
  }

  /** The next whole frame, or null when more bytes are needed. */
  next(): Frame | null {
    const b = this.buffer;
    if (b.length < HEADER_LEN_BYTES) return null;
    if (!b.subarray(0, 4).equals(MAGIC)) throw new ProtocolError(`the server's frame starts with 0x${b.subarray(0, 4).toString("hex")}, not LDGR`);
    if (b.readUInt8(4) !== PROTOCOL_VERSION) throw new ProtocolError(`the server speaks protocol version ${b.readUInt8(4)}, not 1`);
    if (b.readUInt16LE(6) !== 0) throw new ProtocolError("reserved header bytes are not zero");
    const bodyLen = b.readUInt32LE(16);
    if (bodyLen > BODY_LEN_BYTES_MAX) throw new ProtocolError(`a body of ${bodyLen} bytes is above ${BODY_LEN_BYTES_MAX}`);
    if (b.length < HEADER_LEN_BYTES + bodyLen) return null;
    const body = b.subarray(HEADER_LEN_BYTES, HEADER_LEN_BYTES + bodyLen);
    const computed = crc32c(body, crc32c(b.subarray(0, 20)));
    const expected = b.readUInt32LE(20);
    const [opRaw, requestId] = [b.readUInt8(5), b.readBigUInt64LE(8)];
    this.buffer = b.subarray(HEADER_LEN_BYTES + bodyLen);
    if (computed !== expected) throw new ProtocolError(`checksum 0x${computed.toString(16)} does not match the header's 0x${expected.toString(16)}`);
    if (Op[opRaw] === undefined) throw new ProtocolError(`the server sent the unknown op 0x${opRaw.toString(16)}`);
    const op = opRaw as Op;
    if (requestId === 0n && op !== Op.Error) throw new ProtocolError(`${Op[op]} with request id 0`);
    return { op, requestId, message: decodeReply(op, Buffer.from(body)) };
  }
}
