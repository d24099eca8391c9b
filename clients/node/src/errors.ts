// Every error the client raises (secrets never appear in them), and the retry contract of
// PROTOCOL.md ("Timeouts and retries"):
// - Refused: the server refused the request; nothing of it was executed.
// - OutcomeUnknown: a SUBMIT whose outcome is unknown; re-send the same commands (same tx ids,
//   same content) on a new connection, or look them up. Never re-send under new tx ids.
// - NoAnswer: a query or ping without an answer; ask again.
// - ConnectionClosed: the connection is closed; the request was not sent.

/** Base class of every error of this package. */
export class LedgerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The request breaks a rule of the protocol (a float amount, tx id 0, ...). Nothing was sent. */
export class InvalidRequest extends LedgerError {}

/** No TCP connection could be made. */
export class ConnectError extends LedgerError {}

/** The connection was made but HELLO did not complete. */
export class HandshakeError extends LedgerError {}

/** The server refused the client id or the secret. */
export class AuthFailed extends HandshakeError {
  constructor(readonly serverMessage: string) {
    super(`authentication failed: ${serverMessage}`);
  }
}

/** The server refused the request with an ERROR: nothing of it was executed. */
export class Refused extends LedgerError {
  constructor(
    readonly requestId: bigint,
    readonly code: number,
    readonly codeName: string,
    readonly serverMessage: string,
  ) {
    super(`request ${requestId} refused: ${codeName}: ${serverMessage}`);
  }
}

/** A SUBMIT whose outcome is unknown: look the tx ids up, or re-send the same commands. */
export class OutcomeUnknown extends LedgerError {
  constructor(
    readonly requestId: bigint,
    readonly txIds: readonly bigint[],
    readonly reason: string,
  ) {
    super(
      `request ${requestId}: outcome of ${txIds.length} commands unknown (${reason}); ` +
        "look the tx ids up or re-send the same commands",
    );
  }
}

/** A query or ping that got no answer. */
export class NoAnswer extends LedgerError {
  constructor(
    readonly requestId: bigint,
    readonly reason: string,
  ) {
    super(`request ${requestId}: no answer (${reason})`);
  }
}

/** The connection is closed: make a new client. */
export class ConnectionClosed extends LedgerError {
  constructor(readonly reason: string) {
    super(`connection closed: ${reason}`);
  }
}

/** The server sent bytes that are not a valid frame (the connection is closed). */
export class ProtocolError extends LedgerError {}
