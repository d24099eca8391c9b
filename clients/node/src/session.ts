// The protocol state of one connection, without I/O: it makes request frames, takes the bytes
// the server sent, and says how each request ended. Requests are numbered (HELLO is 1, then 2,
// 3, ...), matched by request id, and the retry contract of PROTOCOL.md applies: a passed
// deadline, a broken stream or an invalid frame closes the connection and ends every request
// in flight as OutcomeUnknown (a SUBMIT) or NoAnswer (the others); after the server's
// connection-level `shutting_down` they end as Refused (not executed) instead.

import { AuthFailed, ConnectionClosed, HandshakeError, LedgerError, NoAnswer, OutcomeUnknown } from "./errors.js";
import { ProtocolError, Refused } from "./errors.js";
import { Entry, ErrorCode, ErrorReply, Frame, FrameReader, HelloOk, Op, Outcome, TxIdLike } from "./wire.js";
import { accountQueryBody, encodeFrame, errorCodeName, helloBody, outcomeUnknown, submitBody, txQueryBody } from "./wire.js";

export const HELLO_REQUEST_ID = 1n;

const REPLY_OP: Partial<Record<Op, Op>> = {
  [Op.Hello]: Op.HelloOk,
  [Op.Ping]: Op.Pong,
  [Op.Submit]: Op.SubmitReply,
  [Op.QueryAccount]: Op.Account,
  [Op.QueryTx]: Op.Tx,
  [Op.QueryExposure]: Op.Exposure,
};

const CLOSING_CODES = new Set<number>([
  ErrorCode.MalformedFrame,
  ErrorCode.UnsupportedVersion,
  ErrorCode.FrameTooLarge,
  ErrorCode.NotAuthenticated,
  ErrorCode.AuthFailed,
  ErrorCode.ShuttingDown,
]);

interface InFlight {
  op: Op;
  deadlineMs: number;
  txIds: bigint[];
  pingPayload: bigint;
}

/** How one request ended: its reply's value, or the error to throw. */
export interface Completion {
  requestId: bigint;
  value?: unknown;
  error?: LedgerError;
}

export class Session {
  private readonly reader = new FrameReader();
  private nextRequestId = HELLO_REQUEST_ID + 1n;
  private readonly inFlight = new Map<bigint, InFlight>();
  private serverStopped: ErrorReply | null = null;
  closed: string | null = null;
  helloOk: HelloOk | null = null;

  constructor(readonly requestTimeoutMs: number) {}

  hello(clientId: string, secret: string, deadlineMs: number): Buffer {
    const frame = encodeFrame(Op.Hello, HELLO_REQUEST_ID, helloBody(clientId, secret));
    this.inFlight.set(HELLO_REQUEST_ID, { op: Op.Hello, deadlineMs, txIds: [], pingPayload: 0n });
    return frame;
  }

  get batchLenMax(): number {
    return this.helloOk?.batchLenMax ?? 1;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  submit(entries: readonly Entry[], nowMs: number): [bigint, Buffer] {
    const { body, txIds } = submitBody(entries, this.batchLenMax);
    return this.request(Op.Submit, body, txIds, nowMs);
  }

  queryAccount(accountNo: string, nowMs: number): [bigint, Buffer] {
    return this.request(Op.QueryAccount, accountQueryBody(accountNo), [], nowMs);
  }

  queryExposure(accountNo: string, nowMs: number): [bigint, Buffer] {
    return this.request(Op.QueryExposure, accountQueryBody(accountNo), [], nowMs);
  }

  queryTx(txId: TxIdLike, nowMs: number): [bigint, Buffer] {
    return this.request(Op.QueryTx, txQueryBody(txId), [], nowMs);
  }

  ping(nowMs: number): [bigint, Buffer] {
    const payload = Buffer.alloc(8);
    payload.writeBigUInt64LE(this.nextRequestId);
    return this.request(Op.Ping, payload, [], nowMs, this.nextRequestId);
  }

  private request(op: Op, body: Buffer, txIds: bigint[], nowMs: number, pingPayload = 0n): [bigint, Buffer] {
    if (this.closed !== null) throw new ConnectionClosed(this.closed);
    const requestId = this.nextRequestId;
    const frame = encodeFrame(op, requestId, body);
    this.nextRequestId += 1n;
    this.inFlight.set(requestId, { op, deadlineMs: nowMs + this.requestTimeoutMs, txIds, pingPayload });
    return [requestId, frame];
  }

  nextDeadlineMs(): number | null {
    let earliest: number | null = null;
    for (const request of this.inFlight.values()) {
      if (earliest === null || request.deadlineMs < earliest) earliest = request.deadlineMs;
    }
    return earliest;
  }

  /** Takes bytes from the server (an empty buffer: the server closed); returns what ended. */
  receive(data: Buffer): Completion[] {
    if (this.closed !== null) return [];
    if (data.length === 0) return this.close("the server closed the connection");
    this.reader.feed(data);
    const completions: Completion[] = [];
    while (this.closed === null) {
      let frame: Frame | null;
      try {
        frame = this.reader.next();
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        completions.push(...this.close(`the server sent an invalid frame: ${error.message}`));
        break;
      }
      if (frame === null) break;
      completions.push(...this.dispatch(frame));
    }
    return completions;
  }

  /** Closes the connection when a deadline has passed. */
  expire(nowMs: number): Completion[] {
    if (this.closed !== null) return [];
    let first: bigint | null = null;
    for (const [requestId, request] of this.inFlight) {
      if (request.deadlineMs <= nowMs && (first === null || requestId < first)) first = requestId;
    }
    if (first === null) return [];
    if (first === HELLO_REQUEST_ID) return this.close("no reply to HELLO in time");
    return this.close(`no reply to request ${first} within ${this.requestTimeoutMs} ms`);
  }

  /** Closes the session: every request in flight ends (see the file's comment). */
  close(reason: string): Completion[] {
    if (this.closed !== null) return [];
    this.closed = reason;
    const ids = [...this.inFlight.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const completions = ids.map((requestId) => ({ requestId, error: this.lost(requestId, this.inFlight.get(requestId)!, reason) }));
    this.inFlight.clear();
    return completions;
  }

  private lost(requestId: bigint, request: InFlight, reason: string): LedgerError {
    if (request.op === Op.Hello) return new HandshakeError(`handshake failed: ${reason}`);
    const stopped = this.serverStopped;
    if (stopped !== null) return new Refused(requestId, stopped.code, errorCodeName(stopped.code), stopped.message);
    if (request.op === Op.Submit) return new OutcomeUnknown(requestId, request.txIds, reason);
    return new NoAnswer(requestId, reason);
  }

  private dispatch(frame: Frame): Completion[] {
    if (frame.requestId === 0n) {
      const error = frame.message as ErrorReply;
      if (error.code === ErrorCode.ShuttingDown) this.serverStopped = error;
      return this.close(`the server closed the connection: ${errorCodeName(error.code)}: ${error.message}`);
    }
    const request = this.inFlight.get(frame.requestId);
    if (request === undefined) return this.close(`a reply to request ${frame.requestId}, which is not in flight`);
    this.inFlight.delete(frame.requestId);
    if (frame.op === Op.Error) return this.refused(frame.requestId, request, frame.message as ErrorReply);
    const mismatch = (what: string): Completion[] => {
      this.inFlight.set(frame.requestId, request);
      return this.close(what);
    };
    if (frame.op !== REPLY_OP[request.op]) return mismatch(`${Op[frame.op]} does not answer ${Op[request.op]} ${frame.requestId}`);
    if (request.op === Op.Hello) this.helloOk = frame.message as HelloOk;
    if (request.op === Op.Submit) {
      const ids = (frame.message as Outcome[]).map((outcome) => outcome.txId);
      if (ids.length !== request.txIds.length || ids.some((id, i) => id !== request.txIds[i])) {
        return mismatch(`SUBMIT_REPLY ${frame.requestId} does not match its tx ids`);
      }
    }
    if (request.op === Op.Ping && frame.message !== request.pingPayload) return mismatch(`PONG ${frame.requestId} does not echo its payload`);
    return [{ requestId: frame.requestId, value: frame.message }];
  }

  private refused(requestId: bigint, request: InFlight, error: ErrorReply): Completion[] {
    const name = errorCodeName(error.code);
    let failure: LedgerError;
    if (request.op === Op.Hello) {
      failure = error.code === ErrorCode.AuthFailed ? new AuthFailed(error.message) : new HandshakeError(`HELLO refused: ${name}: ${error.message}`);
    } else if (request.op === Op.Submit && outcomeUnknown(error.code)) {
      failure = new OutcomeUnknown(requestId, request.txIds, `server error ${name}: ${error.message}`);
    } else {
      failure = new Refused(requestId, error.code, name, error.message);
    }
    const completions: Completion[] = [{ requestId, error: failure }];
    if (CLOSING_CODES.has(error.code) || request.op === Op.Hello) {
      completions.push(...this.close(`request ${requestId} refused with ${name}`));
    }
    return completions;
  }
}
