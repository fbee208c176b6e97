// Reconnect: after a connection ended, the close code decides (the table
// of docs/CLIENTS.md) whether the client stops, asks for a new token, or
// opens a new connection, and how long it waits first (exponential
// backoff with full jitter, reset once a connection stayed up).

import { backoffDelay, type Backoff } from "./backoff.js";
import { closeAction, stopCode } from "./closecode.js";
import { ProtowsError } from "./error.js";

// What the reconnect asks of its client.
export interface ReconnectHooks {
  // Open a new connection now.
  connect(): void;
  // A reconnect is scheduled (for the state listeners).
  reconnecting(attempt: number, delayMs: number, closeCode: number, closeReason: string): void;
  // Close the client for good: calls fail with err.
  stop(err: ProtowsError, closeCode: number, closeReason: string): void;
  // Whether the client is closed (close() may come while a token is asked for).
  closed(): boolean;
  // After a 4501: undefined when a new token makes a reconnect worthwhile,
  // else the error to stop with (Auth.afterRejected).
  afterRejectedToken(unauth: ProtowsError): Promise<ProtowsError | undefined>;
}

// Reconnect schedules a client's reconnects.
export class Reconnect {
  readonly #backoff: Backoff;
  readonly #hooks: ReconnectHooks;
  // Reconnect attempts since the last healthy connection.
  #attempt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(backoff: Backoff, hooks: ReconnectHooks) {
    this.#backoff = backoff;
    this.#hooks = hooks;
  }

  // healthy is called when a connection stayed up for resetAfterMs: the
  // next drop starts the backoff afresh.
  healthy(): void {
    this.#attempt = 0;
  }

  // afterClose applies the close-code table to the client's connection
  // that ended with code. failure, when the connection never became
  // ready, is the error to stop with.
  afterClose(code: number, reason: string, failure?: ProtowsError): void {
    switch (closeAction(code)) {
      case "stop":
        this.#hooks.stop(failure ?? new ProtowsError(stopCode(code), closedBy(code, reason)), code, reason);
        return;
      case "token":
        void this.#afterRejectedToken(code, reason, failure);
        return;
      case "now":
      case "refresh": // the next connection asks the token provider first
        // Reconnect at once, with jitter so that a server's clients do not
        // all come back in the same millisecond: neither 1001 nor an
        // expired token (4009) says anything about the server's health.
        this.#schedule(Math.floor(Math.random() * this.#backoff.initialMs), code, reason);
        return;
      case "backoff":
        this.#schedule(backoffDelay(this.#backoff, this.#attempt), code, reason);
        return;
      case "throttled":
        this.#schedule(this.#backoff.initialMs + backoffDelay(this.#backoff, this.#attempt), code, reason);
        return;
    }
  }

  // cancel drops a scheduled reconnect (the client closes).
  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #afterRejectedToken(code: number, reason: string, failure: ProtowsError | undefined): Promise<void> {
    const stop = await this.#hooks.afterRejectedToken(failure ?? new ProtowsError("unauthenticated", closedBy(code, reason)));
    if (this.#hooks.closed()) return;
    if (stop !== undefined) {
      this.#hooks.stop(stop, code, reason);
      return;
    }
    this.#schedule(backoffDelay(this.#backoff, this.#attempt), code, reason);
  }

  #schedule(delayMs: number, code: number, reason: string): void {
    this.#attempt++;
    this.#hooks.reconnecting(this.#attempt, delayMs, code, reason);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#hooks.connect();
    }, delayMs);
  }
}

function closedBy(code: number, reason: string): string {
  return `server closed the connection (${code}${reason === "" ? "" : ` ${reason}`})`;
}
