// Authentication in band (docs/PROTOCOL.md section 6): browsers cannot set
// headers on a WebSocket, so the client presents its bearer token with
// /protows.v1.AuthService/Authenticate on every connection before calls use
// it, again before the token expires, and decides after a 4501 whether a
// new connection could do better.

import type { Calls } from "./call.js";
import type { Conn } from "./conn.js";
import { ProtowsError } from "./error.js";
import { AuthService } from "./gen/protows/v1/protows_pb.js";

/** Returns the bearer token; see ClientOptions.token. */
export type TokenProvider = () => string | Promise<string>;

// Auth holds a client's token provider and the tokens it returned.
export class Auth {
  readonly #provider: TokenProvider | undefined;
  readonly #refreshMarginMs: number;
  readonly #timeoutMs: number;
  readonly #calls: Calls;
  #lastToken: string | undefined;
  #pendingToken: string | undefined; // fetched after a 4501, used by the next connection

  constructor(provider: TokenProvider | undefined, refreshMarginMs: number, timeoutMs: number, calls: Calls) {
    this.#provider = provider;
    this.#refreshMarginMs = refreshMarginMs;
    this.#timeoutMs = timeoutMs;
    this.#calls = calls;
  }

  // handshake authenticates a new connection when there is a token
  // provider, and schedules the refresh. It resolves true when the
  // connection may be used: anonymous, authenticated, or on a server
  // without an authenticator; false when it ended or is about to (the
  // server closes with 4501 after a refused token, this side with 4000
  // after any other failure).
  async handshake(conn: Conn): Promise<boolean> {
    if (this.#provider === undefined) {
      return !conn.ended;
    }
    let expiresAt: bigint;
    try {
      const res = await this.#authenticate(conn, await this.#nextToken());
      expiresAt = res.expiresAt;
    } catch (err) {
      if (conn.ended) return false;
      if (err instanceof ProtowsError && err.code === "unauthenticated") {
        // The server closes with 4501 right after; the reconnect decides.
        return false;
      }
      if (!(err instanceof ProtowsError && err.code === "unimplemented")) {
        conn.abandon(4000, `authentication failed: ${String(err)}`);
        return false;
      }
      // A server without an authenticator: the connection is anonymous.
      expiresAt = 0n;
    }
    if (conn.ended) return false;
    this.#scheduleRefresh(conn, expiresAt);
    return true;
  }

  // afterRejected is called after a 4501 (unauth is the error to stop
  // with): it asks the provider for a token, which the next connection
  // presents. It resolves undefined when a reconnect may succeed, or the
  // error to stop with when the provider failed or gave the token the
  // server refused: reconnecting would only be refused again.
  async afterRejected(unauth: ProtowsError): Promise<ProtowsError | undefined> {
    const rejected = this.#lastToken;
    if (this.#provider === undefined) {
      return unauth;
    }
    let next: string;
    try {
      next = await this.#provider();
    } catch (err) {
      return new ProtowsError("unauthenticated", `token provider failed: ${String(err)}`);
    }
    if (next === rejected) {
      return unauth;
    }
    this.#pendingToken = next;
    return undefined;
  }

  async #nextToken(): Promise<string> {
    const pending = this.#pendingToken;
    this.#pendingToken = undefined;
    const token = pending ?? (await this.#provider!());
    this.#lastToken = token;
    return token;
  }

  #authenticate(conn: Conn, token: string): Promise<{ expiresAt: bigint }> {
    return this.#calls.exchange(conn, AuthService.method.authenticate, { token }, this.#timeoutMs);
  }

  // The refresh runs a fifth of the token's lifetime, at most
  // refreshMarginMs, before it expires, on the same connection.
  #scheduleRefresh(conn: Conn, expiresAt: bigint): void {
    conn.clearTimer("refresh");
    if (expiresAt <= 0n) {
      return;
    }
    const lifetime = Number(expiresAt) * 1000 - Date.now();
    const margin = Math.min(this.#refreshMarginMs, Math.max(0, lifetime) / 5);
    conn.timer(
      "refresh",
      () => {
        void (async () => {
          try {
            const res = await this.#authenticate(conn, await this.#nextToken());
            if (!conn.ended) this.#scheduleRefresh(conn, res.expiresAt);
          } catch {
            // The connection keeps its credential until it expires; then
            // the server closes with 4009 and the reconnect asks again.
          }
        })();
      },
      Math.max(0, lifetime - margin),
    );
  }
}
