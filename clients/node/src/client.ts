// The client: one TCP (or TLS) connection, many requests in flight. Every call returns a
// promise; send many and await them together (Promise.all): replies are matched by request
// id, in whatever order the server sends them. A timer enforces the deadlines.
//
// A write the socket had buffered when the connection broke is reported as OutcomeUnknown
// (the client cannot tell how much of it was sent): the safe side of the retry contract.

import * as net from "node:net";
import * as tls from "node:tls";

import { ConnectError, HandshakeError, InvalidRequest, LedgerError } from "./errors.js";
import { Completion, Session } from "./session.js";
import { Account, Entry, Exposure, HelloOk, IN_FLIGHT_MAX, Outcome, Tx, TxIdLike } from "./wire.js";

export interface Credentials {
  clientId: string;
  secret: string;
}

export interface Options {
  /** TCP connect and handshake together. Default 2 000. */
  connectTimeoutMs?: number;
  /** Each request, from writing it to its reply. Default 5 000. */
  requestTimeoutMs?: number;
  /** Most requests in flight (the server's HELLO_OK may lower it); more wait. Default 1 024. */
  inFlightMax?: number;
  /** TLS options, for `ledgerd --tls-cert ...` (PROTOCOL.md, "TLS"); absent: plain TCP. */
  tls?: tls.ConnectionOptions;
}

const TIMEOUT_MS_MAX = 3_600_000;

function checked(name: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 1 || value > max) throw new InvalidRequest(`${name} ${value} is outside 1..=${max}`);
  return value;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: LedgerError) => void;
}

export class Client {
  private readonly pending = new Map<bigint, Pending>();
  private readonly waiting: (() => void)[] = [];
  private timer: NodeJS.Timeout | null = null;
  readonly helloOk: HelloOk;
  readonly inFlightMax: number;

  private constructor(
    private readonly socket: net.Socket,
    private readonly session: Session,
    inFlightMax: number,
  ) {
    this.helloOk = session.helloOk!;
    this.inFlightMax = Math.min(inFlightMax, this.helloOk.inFlightMax);
    socket.on("data", (data: Buffer) => this.finish(this.session.receive(data)));
    socket.on("end", () => this.finish(this.session.receive(Buffer.alloc(0))));
    socket.on("close", () => this.finish(this.session.close("the connection closed")));
    socket.on("error", (error) => this.finish(this.session.close(`socket: ${error.message}`)));
  }

  /** Connects to `host:port`, sends HELLO and waits for HELLO_OK within `connectTimeoutMs`. */
  static async connect(address: { host: string; port: number }, credentials: Credentials, options: Options = {}): Promise<Client> {
    const connectTimeoutMs = checked("connectTimeoutMs", options.connectTimeoutMs ?? 2_000, TIMEOUT_MS_MAX);
    const requestTimeoutMs = checked("requestTimeoutMs", options.requestTimeoutMs ?? 5_000, TIMEOUT_MS_MAX);
    const inFlightMax = checked("inFlightMax", options.inFlightMax ?? 1_024, IN_FLIGHT_MAX);
    const deadlineMs = Date.now() + connectTimeoutMs;
    const session = new Session(requestTimeoutMs);
    const hello = session.hello(credentials.clientId, credentials.secret, deadlineMs);
    const socket = await open(address, options.tls, connectTimeoutMs);
    try {
      await handshake(socket, session, hello, deadlineMs - Date.now());
    } catch (error) {
      socket.destroy();
      throw error;
    }
    return new Client(socket, session, inFlightMax);
  }

  get batchLenMax(): number {
    return this.helloOk.batchLenMax;
  }

  /** Why the connection is closed, or null while it is open. */
  get closed(): string | null {
    return this.session.closed;
  }

  /** Submits `[txId, command]` pairs; resolves to their outcomes, one per command, in order. */
  submit(entries: readonly Entry[]): Promise<Outcome[]> {
    return this.send((now) => this.session.submit(entries, now)) as Promise<Outcome[]>;
  }

  /** The account, or null if there is none. */
  account(accountNo: string): Promise<Account | null> {
    return this.send((now) => this.session.queryAccount(accountNo, now)) as Promise<Account | null>;
  }

  /** The transaction, or null if the ledger does not remember it. */
  tx(txId: TxIdLike): Promise<Tx | null> {
    return this.send((now) => this.session.queryTx(txId, now)) as Promise<Tx | null>;
  }

  /** The account's unsettled deposits and exposure, or null if there is no such account. */
  exposure(accountNo: string): Promise<Exposure | null> {
    return this.send((now) => this.session.queryExposure(accountNo, now)) as Promise<Exposure | null>;
  }

  /** Round-trip time of a PING, in milliseconds. */
  async ping(): Promise<number> {
    const start = performance.now();
    await this.send((now) => this.session.ping(now));
    return performance.now() - start;
  }

  /** Closes the connection; requests still in flight end as outcome unknown. */
  close(): void {
    this.finish(this.session.close("closed by the client"));
  }

  private async send(make: (nowMs: number) => [bigint, Buffer]): Promise<unknown> {
    // A client with more in flight only waits (PROTOCOL.md, "Pipelining").
    while (this.pending.size >= this.inFlightMax && this.session.closed === null) {
      await new Promise<void>((wake) => this.waiting.push(wake));
    }
    const [requestId, frame] = make(Date.now());
    const reply = new Promise((resolve, reject) => this.pending.set(requestId, { resolve, reject }));
    this.armTimer();
    this.socket.write(frame);
    return reply;
  }

  private armTimer(): void {
    const deadline = this.session.nextDeadlineMs();
    if (deadline === null || this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.finish(this.session.expire(Date.now()));
      if (this.session.closed === null) this.armTimer();
    }, Math.max(0, deadline - Date.now()));
  }

  private finish(completions: Completion[]): void {
    for (const completion of completions) {
      const pending = this.pending.get(completion.requestId);
      if (pending === undefined) continue;
      this.pending.delete(completion.requestId);
      if (completion.error) pending.reject(completion.error);
      else pending.resolve(completion.value);
      this.waiting.shift()?.();
    }
    if (this.session.closed !== null) {
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
      this.socket.destroy();
      for (const wake of this.waiting.splice(0)) wake();
    }
  }
}

function open(address: { host: string; port: number }, tlsOptions: tls.ConnectionOptions | undefined, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const where = `${address.host}:${address.port}`;
    // SNI carries host names only (RFC 6066): an IP address is verified against the
    // certificate's IP addresses without one.
    const servername = tlsOptions?.servername ?? (net.isIP(address.host) ? undefined : address.host);
    const socket = tlsOptions
      ? tls.connect({ ...tlsOptions, host: address.host, port: address.port, ...(servername === undefined ? {} : { servername }) })
      : net.connect({ host: address.host, port: address.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ConnectError(`cannot connect to ${where}: timeout after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once(tlsOptions ? "secureConnect" : "connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(new ConnectError(`cannot connect to ${where}: ${error.message}`));
    });
  });
}

function handshake(socket: net.Socket, session: Session, hello: Buffer, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: LedgerError): void => {
      clearTimeout(timer);
      socket.removeListener("data", onData);
      socket.removeListener("end", onEnd);
      socket.removeListener("error", onError);
      if (error) reject(error);
      else resolve();
    };
    const settle = (completions: Completion[]): void => {
      const failure = completions.find((completion) => completion.error)?.error;
      if (failure) done(failure);
      else if (session.helloOk) done();
      else if (session.closed !== null) done(new HandshakeError(`handshake failed: ${session.closed}`));
    };
    const onData = (data: Buffer): void => settle(session.receive(data));
    const onEnd = (): void => settle(session.receive(Buffer.alloc(0)));
    const onError = (error: Error): void => settle(session.close(`socket: ${error.message}`));
    const timer = setTimeout(() => settle(session.expire(Number.MAX_SAFE_INTEGER)), Math.max(1, timeoutMs));
    socket.on("data", onData);
    socket.on("end", onEnd);
    socket.on("error", onError);
    socket.write(hello);
  });
}
