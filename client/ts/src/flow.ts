// Client-streaming and bidirectional calls (docs/PROTOCOL.md sections 4.4
// to 4.6): a REQUEST without payload, the server's first CREDIT that opens
// the call, STREAM_MESSAGEs within the server's credit, the half-close, and
// (bidirectional) the server's STREAM_MESSAGEs within this client's window,
// granted back with CREDIT as the application takes them. Such calls are
// never resumed after a reconnect: they end with `unavailable`.

import type { WireEnvelope } from "./codec.js";
import type { Conn } from "./conn.js";
import { ProtowsError, wireError } from "./error.js";
import { Kind } from "./gen/protows/v1/protows_pb.js";

/**
 * The window of the server's STREAM_MESSAGEs this client grants on every
 * server stream and bidirectional call (the REQUEST's `credit`), as the Go
 * client's default stream buffer (docs/PROTOCOL.md section 11).
 */
export const streamWindow = 256;

// Granter counts the messages the application took from a flow-controlled
// stream and says when to grant them back: once at least half the window
// was taken since the last CREDIT (docs/PROTOCOL.md section 4.6).
export class Granter {
  #taken = 0;

  // took records one message taken; it returns the credit to grant now, 0
  // for none yet.
  took(): number {
    this.#taken++;
    if (this.#taken * 2 < streamWindow) {
      return 0;
    }
    const n = this.#taken;
    this.#taken = 0;
    return n;
  }
}

// FlowCall is one client-streaming or bidirectional call on one connection.
// Its state changes wake whoever waits (send for credit, the reader for a
// message, the caller for the outcome).
export class FlowCall {
  readonly id: number;
  readonly #conn: Conn;
  readonly #bidi: boolean;
  readonly #signal: AbortSignal;
  readonly #onAbort: () => void;
  readonly #granter = new Granter();
  readonly #messages: unknown[] = [];
  #waiters: (() => void)[] = [];
  // The server's first CREDIT came: messages may go (within credit).
  #open = false;
  #credit = 0;
  #halfClosed = false;
  #ended = false;
  #error: ProtowsError | undefined;
  #reply: WireEnvelope | undefined;
  // done resolves when the call ended, for whoever races it.
  readonly done: Promise<void>;
  #resolveDone!: () => void;

  // The constructor registers the call on conn under a fresh id and sends
  // its REQUEST (req, without id); it throws `unavailable` when the send
  // fails.
  constructor(conn: Conn, req: WireEnvelope, bidi: boolean, signal: AbortSignal) {
    if (signal.aborted) throw signal.reason;
    this.#conn = conn;
    this.#bidi = bidi;
    this.#signal = signal;
    this.done = new Promise<void>((resolve) => (this.#resolveDone = resolve));
    this.id = conn.allocId();
    conn.calls.set(this.id, {
      onEnvelope: (env) => this.#onEnvelope(env),
      onLost: (err) => this.#end(err),
    });
    this.#onAbort = () => this.cancel(signal.reason as ProtowsError);
    signal.addEventListener("abort", this.#onAbort, { once: true });
    const env: WireEnvelope = { ...req, id: this.id };
    delete env.payload; // the messages follow as STREAM_MESSAGEs
    if (bidi) env.credit = streamWindow;
    try {
      conn.send([env]);
    } catch (err) {
      this.#end(new ProtowsError("unavailable", "send failed", { cause: err }));
      throw this.#error;
    }
  }

  get ended(): boolean {
    return this.#ended;
  }

  #onEnvelope(env: WireEnvelope): void {
    switch (env.kind) {
      case Kind.CREDIT:
        if ((env.credit ?? 0) > 0) {
          this.#open = true;
          this.#credit += env.credit!;
          this.#wake();
        }
        return;
      case Kind.STREAM_MESSAGE:
        if (this.#bidi) {
          this.#messages.push(env.payload);
          this.#wake();
          return;
        }
        break;
      case Kind.STREAM_END:
        if (this.#bidi) {
          this.#end(env.error === undefined ? undefined : wireError(env));
          return;
        }
        break;
      case Kind.REPLY:
        if (!this.#bidi) {
          this.#reply = env;
          this.#end(undefined);
          return;
        }
        break;
      case Kind.ERROR:
        this.#end(wireError(env));
        return;
    }
    this.#conn.sendCancel(this.id);
    this.#end(new ProtowsError("internal", `unexpected ${Kind[env.kind]} for a ${this.#bidi ? "bidirectional" : "client-streaming"} call`));
  }

  #end(err: ProtowsError | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = err;
    this.#conn.calls.delete(this.id);
    this.#signal.removeEventListener("abort", this.#onAbort);
    this.#resolveDone();
    this.#wake();
  }

  #wake(): void {
    const ws = this.#waiters;
    this.#waiters = [];
    for (const w of ws) w();
  }

  #wait(): Promise<void> {
    return new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  // cancel ends the call with err, sending CANCEL when it was still open
  // on the server.
  cancel(err: ProtowsError): void {
    if (this.#ended) return;
    this.#messages.length = 0;
    this.#conn.sendCancel(this.id);
    this.#end(err);
  }

  // send sends one encoded message once the server granted credit for it.
  // It rejects with the call's error when the call ended first, or with
  // `failed_precondition` after a clean end or the half-close.
  async send(payload: unknown): Promise<void> {
    for (;;) {
      if (this.#ended) throw this.#endedError();
      if (this.#halfClosed) throw new ProtowsError("failed_precondition", "send after closeSend");
      if (this.#open && this.#credit > 0) {
        this.#credit--;
        this.#write({ id: this.id, kind: Kind.STREAM_MESSAGE, payload });
        return;
      }
      await this.#wait();
    }
  }

  // closeSend half-closes the call (STREAM_END) once it is open; after the
  // call ended it does nothing.
  async closeSend(): Promise<void> {
    for (;;) {
      if (this.#ended || this.#halfClosed) return;
      if (this.#open) {
        this.#halfClosed = true;
        this.#write({ id: this.id, kind: Kind.STREAM_END });
        return;
      }
      await this.#wait();
    }
  }

  #write(env: WireEnvelope): void {
    try {
      this.#conn.send([env]);
    } catch (err) {
      const e = new ProtowsError("unavailable", "send failed", { cause: err });
      this.#end(e);
      throw e;
    }
  }

  #endedError(): ProtowsError {
    return this.#error ?? new ProtowsError("failed_precondition", "the call already ended");
  }

  // result waits for the end of a client-streaming call: its REPLY, or the
  // error it ended with.
  async result(): Promise<WireEnvelope> {
    while (!this.#ended) await this.#wait();
    if (this.#error !== undefined) throw this.#error;
    return this.#reply!;
  }

  // next returns the payload of the server's next message of a
  // bidirectional call, granting credit as they are taken; done at the
  // server's clean STREAM_END; it throws the error the call ended with.
  async next(): Promise<{ payload: unknown } | undefined> {
    for (;;) {
      if (this.#messages.length > 0) {
        const payload = this.#messages.shift();
        const grant = this.#granter.took();
        if (grant > 0 && !this.#ended) {
          try {
            this.#conn.send([{ id: this.id, kind: Kind.CREDIT, credit: grant }]);
          } catch {
            // The connection is going; the call ends with it.
          }
        }
        return { payload };
      }
      if (this.#ended) {
        if (this.#error !== undefined) throw this.#error;
        return undefined;
      }
      await this.#wait();
    }
  }
}
