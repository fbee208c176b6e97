/** Reconnect backoff: exponential, with full jitter. */
export interface BackoffOptions {
  /** The ceiling of the first delay, in ms. Default 500. */
  initialMs?: number;
  /** The largest ceiling, in ms. Default 30000. */
  maxMs?: number;
  /** The growth of the ceiling per failed attempt. Default 2. */
  multiplier?: number;
  /**
   * How long a connection must stay up, in ms, before the attempt count
   * goes back to 0. Default 30000.
   */
  resetAfterMs?: number;
}

/** The resolved form of BackoffOptions. */
export type Backoff = Required<BackoffOptions>;

/** resolveBackoff fills in the defaults. */
export function resolveBackoff(o: BackoffOptions | undefined): Backoff {
  return {
    initialMs: o?.initialMs ?? 500,
    maxMs: o?.maxMs ?? 30_000,
    multiplier: o?.multiplier ?? 2,
    resetAfterMs: o?.resetAfterMs ?? 30_000,
  };
}

/**
 * backoffDelay returns the delay before reconnect attempt n (from 0): a
 * uniformly random duration between 0 and min(max, initial * multiplier^n)
 * ("full jitter", so that clients dropped together do not come back
 * together).
 */
export function backoffDelay(b: Backoff, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(b.maxMs, b.initialMs * Math.pow(b.multiplier, attempt));
  return Math.floor(random() * ceiling);
}

/** What a client does after the connection closed with a code. */
export type CloseAction =
  /** Do not reconnect (a bug, a refusal, or a normal close). */
  | "stop"
  /** Reconnect at once, with jitter only (1001: the server is going away). */
  | "now"
  /** Reconnect after a backoff delay. */
  | "backoff"
  /** The server is overloaded or rate limits (1013, 4029): wait initialMs more than the backoff. */
  | "throttled"
  /** Get a new token first (4501: stop when the token did not change). */
  | "token"
  /** The token expired (4009): get a new one and reconnect at once, with jitter only, as for "now". */
  | "refresh";

/**
 * closeAction applies the close-code table of docs/PROTOCOL.md section 9:
 * 4000-4499 reconnect, 4500-4999 stop, unknown codes reconnect with backoff.
 */
export function closeAction(code: number): CloseAction {
  // The same table as the Go client's (docs/CLIENTS.md).
  switch (code) {
    case 1000:
    case 1002:
    case 1003:
    case 1007:
    case 1009:
      return "stop";
    case 1001:
      return "now";
    case 1013:
    case 4029:
      return "throttled";
    case 4009:
      return "refresh";
    case 4501:
      return "token";
  }
  if (code >= 4500 && code <= 4999) {
    return "stop";
  }
  return "backoff";
}

/**
 * stopCode is the error code of calls that fail because the client stopped
 * after close code `code` (the last column of the table in docs/CLIENTS.md).
 */
export function stopCode(code: number): "unavailable" | "internal" | "unauthenticated" | "permission_denied" | "failed_precondition" {
  switch (code) {
    case 1002:
    case 1003:
    case 1007:
    case 1009:
      return "internal";
    case 4501:
      return "unauthenticated";
    case 4503:
      return "permission_denied";
    case 4505:
      return "failed_precondition";
  }
  return "unavailable";
}
