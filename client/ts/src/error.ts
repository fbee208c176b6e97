import { codeName, type CodeName } from "./code.js";
import type { WireEnvelope } from "./codec.js";

/**
 * ProtowsError is the error of a failed call: the error the server sent
 * (ERROR or STREAM_END with an error), or one the client made up for a call
 * that could not finish: `canceled` (AbortSignal, `close()`),
 * `deadline_exceeded` (timeout), `unavailable` (the connection dropped while
 * the call was in flight, or closed for good before it could be sent).
 */
export class ProtowsError extends Error {
  /** The code, as its name: "not_found", "unavailable", ... */
  readonly code: CodeName;
  /** The message without the code: what the server sent as Error.message. */
  readonly rawMessage: string;
  /**
   * The full name of the method of the call that failed
   * ("/protows.test.v1.TestService/Echo"), which the message names too:
   * every error a call or stream fails with has it. Undefined for errors
   * that concern the connection rather than one call (StateChange.error).
   */
  readonly method: string | undefined;

  constructor(code: CodeName | number, message: string, options?: { cause?: unknown; method?: string }) {
    const name = typeof code === "number" ? codeName(code) : code;
    const method = options?.method;
    super(
      `protows: ${method === undefined ? "" : `${method}: `}${name}${message === "" ? "" : `: ${message}`}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "ProtowsError";
    this.code = name;
    this.rawMessage = message;
    this.method = method;
  }
}

// withMethod returns err naming the method of the call it failed: a copy,
// as one error may be shared by the calls of a connection that ended.
// Other errors, and errors that name a method already, are returned as
// they are.
export function withMethod(err: unknown, method: string): unknown {
  if (!(err instanceof ProtowsError) || err.method !== undefined) {
    return err;
  }
  return new ProtowsError(err.code, err.rawMessage, { cause: err.cause, method });
}

/**
 * ConnectionLostError is the `cause` of the `unavailable` ProtowsError of a
 * call that was in flight when its connection ended: the server may or may
 * not have run it. It is what the Go client's `ErrConnectionLost` is there.
 * The client retries idempotent calls and re-opens streams after this
 * error, and after no other:
 *
 * ```ts
 * if (err instanceof ProtowsError && err.cause instanceof ConnectionLostError) {
 *   // The outcome is unknown: check before doing it again.
 * }
 * ```
 */
export class ConnectionLostError extends Error {
  /** The close code of the connection (CloseCode.Abnormal, 1006, when it dropped). */
  readonly closeCode: number;
  /** The close reason, or the server's last connection-level error. */
  readonly closeReason: string;

  constructor(closeCode: number, closeReason: string) {
    super(`connection lost (${closeCode}${closeReason === "" ? "" : ` ${closeReason}`})`);
    this.name = "ConnectionLostError";
    this.closeCode = closeCode;
    this.closeReason = closeReason;
  }
}

// connectionLost is the error of the calls in flight on a connection that
// ended with code; detail is the close reason or the server's last
// connection-level error.
export function connectionLost(code: number, detail: string): ProtowsError {
  return new ProtowsError("unavailable", `connection closed (${code}${detail === "" ? "" : ` ${detail}`})`, {
    cause: new ConnectionLostError(code, detail),
  });
}

// isConnectionLost reports whether err is the error of a call whose
// connection ended while it was in flight: only such calls may be retried
// (idempotent calls) or re-opened (streams).
export function isConnectionLost(err: unknown): boolean {
  return err instanceof ProtowsError && err.cause instanceof ConnectionLostError;
}

// wireError is the ProtowsError an ERROR or a STREAM_END with an error
// carries (code 0, which a server must not send, reads as unknown).
export function wireError(env: Pick<WireEnvelope, "error">): ProtowsError {
  const code = env.error?.code ?? 0;
  return new ProtowsError(code === 0 ? "unknown" : code, env.error?.message ?? "");
}
