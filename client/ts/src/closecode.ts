// Close codes: their names (docs/PROTOCOL.md section 9) and what the
// client does after each (the close-code table of docs/CLIENTS.md, which
// the Go client's tests generate from its code; test/closecode.test.ts
// holds this file to that table).

/**
 * The WebSocket close codes a protows server sends, and 1006, which the
 * browser reports for a connection that dropped without a close frame.
 * `StateChange.closeCode` is a plain number, as a server may send other
 * codes; compare it with these. 4000-4499 tell a client to reconnect,
 * 4500-4999 not to until something changes.
 */
export const CloseCode = {
  /** 1000: normal close. The client stops. */
  Normal: 1000,
  /** 1001: the server is shutting down or draining. The client reconnects at once (with jitter). */
  GoingAway: 1001,
  /** 1002: this client broke the protocol. The client stops. */
  ProtocolError: 1002,
  /** 1003: a frame of the wrong type (text on the Protobuf codec, binary on JSON). The client stops. */
  UnsupportedData: 1003,
  /** 1006: the connection dropped without a close frame (also a missed heartbeat). The client reconnects with backoff. */
  Abnormal: 1006,
  /** 1007: a frame the server could not decode. The client stops. */
  InvalidPayload: 1007,
  /** 1009: a message over the server's size limit. The client stops. */
  MessageTooBig: 1009,
  /** 1011: the server failed. The client reconnects with backoff. */
  InternalError: 1011,
  /** 1013: the server is overloaded. The client reconnects after initialMs plus the backoff. */
  TryAgainLater: 1013,
  /** 4002: nothing arrived within the server's read timeout (the client's own heartbeat timeout closes with it too). */
  HeartbeatTimeout: 4002,
  /** 4008: the connection's send queue overflowed. The client reconnects with backoff. */
  SlowConsumer: 4008,
  /** 4009: the token expired. The client gets a new token and reconnects at once (with jitter). */
  TokenExpired: 4009,
  /** 4029: the client exceeded the server's rate limit. The client reconnects after initialMs plus the backoff. */
  RateLimited: 4029,
  /** 4501: authentication failed. The client stops unless the token provider returns a different token. */
  Unauthenticated: 4501,
  /** 4503: the server refused the authenticated principal. The client stops. */
  Forbidden: 4503,
  /** 4505: the server does not speak this protocol version. The client stops. */
  UnsupportedVersion: 4505,
} as const;

/** One of the close codes CloseCode names. */
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

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
 * closeAction applies the close-code table of docs/CLIENTS.md (the Go
 * client's): 4000-4499 reconnect, 4500-4999 stop, unknown codes reconnect
 * with backoff.
 */
export function closeAction(code: number): CloseAction {
  switch (code) {
    case CloseCode.Normal:
    case CloseCode.ProtocolError:
    case CloseCode.UnsupportedData:
    case CloseCode.InvalidPayload:
    case CloseCode.MessageTooBig:
      return "stop";
    case CloseCode.GoingAway:
      return "now";
    case CloseCode.TryAgainLater:
    case CloseCode.RateLimited:
      return "throttled";
    case CloseCode.TokenExpired:
      return "refresh";
    case CloseCode.Unauthenticated:
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
    case CloseCode.ProtocolError:
    case CloseCode.UnsupportedData:
    case CloseCode.InvalidPayload:
    case CloseCode.MessageTooBig:
      // The server says this client broke the protocol: retrying would
      // break it again.
      return "internal";
    case CloseCode.Unauthenticated:
      return "unauthenticated";
    case CloseCode.Forbidden:
      return "permission_denied";
    case CloseCode.UnsupportedVersion:
      return "failed_precondition";
  }
  return "unavailable";
}
