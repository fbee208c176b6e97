// The outbox: unary calls made with an idempotency key (CallOptions
// exactlyOnce or idempotencyKey) wait here until they get their answer or
// their deadline passes, and are sent again, with the same key, on every
// new connection (docs/PROTOCOL.md, section 3.7). The server runs each
// call's handler once and answers every send with that run's outcome. It
// mirrors the Go client's outbox (client/outbox.go):
//   - a call is sent on each connection at most once, and again on the next
//     connection when the one it was sent on ended before the answer;
//   - calls are sent, and sent again, in the order they were made
//     (#entries is in that order); a call never waits for the answer of an
//     earlier one, but at most maxInFlight of them are in flight at once on
//     a connection, under the server's limit of calls in flight;
//   - an ERROR unavailable (the server refused the call or the handler said
//     "try again"; the server does not keep that outcome) sends the call
//     again after a backoff delay, at most maxUnavailable times; every other
//     REPLY or ERROR is the answer;
//   - the deadline and the signal bound it all: each send carries the time
//     left (timeout_ms), and when the call is given up it leaves the outbox
//     (and its storage) and the server is told (CANCEL) if it is in flight.
// A storage (OutboxStorage) keeps a copy of each call, so that a client
// started later on the same storage (a browser page after a reload) sends
// again what an earlier one had no answer for, and reports the answers to
// ClientOptions.onRecoveredCall.

import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { backoffDelay, type Backoff } from "./backoff.js";
import type { Codec, WireEnvelope } from "./codec.js";
import type { Conn } from "./conn.js";
import { ProtowsError, wireError } from "./error.js";
import { Kind } from "./gen/protows/v1/protows_pb.js";
import type { StreamRequest, UnaryRequest } from "./interceptor.js";
import { methodId } from "./method.js";

/**
 * A call of the outbox as an OutboxStorage keeps it: plain data that the
 * structured clone algorithm copies (IndexedDB stores it as it is).
 */
export interface StoredCall {
  /** The idempotency key, which names the call in the storage. */
  key: string;
  /** The method's full name, "/pkg.Service/Method". */
  method: string;
  /** The subprotocol of the codec that encoded payload. */
  codec: string;
  /** The request message in the codec's form: Protobuf bytes, or the protojson value. */
  payload: unknown;
  /** The request metadata. */
  metadata?: Record<string, string>;
  /** When the call is given up, in ms since the epoch; absent: never. */
  deadline?: number;
  /** Orders the calls: they are sent again in ascending order. */
  order: number;
}

/**
 * Where the outbox keeps a copy of its calls until they are answered, so
 * that a later client can send them again (ClientOptions.outboxStorage).
 * The client calls put when a call is made, delete when it is answered or
 * given up, and list once, when it starts. The methods may return promises;
 * a failed put or delete does not fail the call (the call goes on in
 * memory). `@protows/client/indexeddb` has one for browsers.
 */
export interface OutboxStorage {
  put(call: StoredCall): void | Promise<void>;
  delete(key: string): void | Promise<void>;
  list(): StoredCall[] | Promise<StoredCall[]>;
}

/**
 * The answer of a call that the client found in its outbox storage when it
 * started: made by an earlier client (before a page reload) whose promise
 * is gone. Given to ClientOptions.onRecoveredCall.
 */
export interface RecoveredCall {
  /** The call's idempotency key. */
  readonly key: string;
  /** The method's full name. */
  readonly method: string;
  /** The request metadata. */
  readonly metadata: Record<string, string>;
  /** The error the call ended with: the server's, or `deadline_exceeded`; undefined when it got a reply. */
  readonly error: ProtowsError | undefined;
  /** request decodes the request message; schema is the method's input (`ChatService.method.send.input`). */
  request<D extends DescMessage>(schema: D): MessageShape<D>;
  /** response decodes the reply (the method's output schema); it throws `error` when the call failed. */
  response<D extends DescMessage>(schema: D): MessageShape<D>;
}

// Calls in flight per connection from the outbox, under the server's
// default limit of 128 (docs/PROTOCOL.md, section 11) so that other calls
// still fit.
const maxInFlight = 64;
// How often an ERROR unavailable sends a call again.
const maxUnavailable = 3;
const keyPattern = /^[\x21-\x7e]{1,128}$/;

interface Entry {
  readonly call: StoredCall;
  // How the call ends: its answer (REPLY or ERROR envelope) or an error.
  readonly done: (env: WireEnvelope | undefined, err: ProtowsError | undefined) => void;
  conn?: Conn; // the connection it was last sent on, while in flight there
  id: number;
  unavailable: number;
  waiting: boolean; // a backoff delay after an unavailable runs
  timer?: ReturnType<typeof setTimeout>;
  unlink?: () => void; // removes the signal's listener
  recovered?: boolean; // found in the storage at start: no promise waits
}

// Outbox holds one client's keyed calls.
export class Outbox {
  readonly #codec: Codec;
  readonly #backoff: Backoff;
  readonly #storage: OutboxStorage | undefined;
  #entries: Entry[] = [];
  #conn: Conn | undefined;
  #loaded = false;
  #stopped = false;
  #order = 0;

  constructor(codec: Codec, backoff: Backoff, storage: OutboxStorage | undefined, onRecovered: ((c: RecoveredCall) => void) | undefined) {
    this.#codec = codec;
    this.#backoff = backoff;
    this.#storage = storage;
    if (storage === undefined) {
      this.#loaded = true;
      return;
    }
    void (async () => {
      let stored: StoredCall[] = [];
      try {
        stored = await storage.list();
      } catch {
        // An unreadable storage has nothing to send again.
      }
      // A client closed before its storage was read leaves it for the next.
      if (this.#stopped) return;
      stored.sort((a, b) => a.order - b.order);
      const recovered: Entry[] = [];
      for (const call of stored) {
        this.#order = Math.max(this.#order, call.order);
        const e: Entry = this.#entry(call, (env, err) => {
          if (onRecovered === undefined) return;
          const error = err ?? (env?.kind === Kind.ERROR ? wireError(env) : undefined);
          try {
            onRecovered({
              key: call.key,
              method: call.method,
              metadata: { ...call.metadata },
              error,
              request: (schema) => this.#codec.decodePayload(schema, call.payload),
              response: (schema) => {
                if (error !== undefined) throw error;
                return this.#codec.decodePayload(schema, env?.payload);
              },
            });
          } catch {
            // The callback's failure is its own.
          }
        });
        e.recovered = true;
        if (call.codec !== codec.subprotocol) {
          // Its payload cannot be sent in this client's codec.
          this.#end(e, undefined, new ProtowsError("failed_precondition", `stored by a client of codec ${call.codec}`));
        } else {
          recovered.push(e);
        }
      }
      // The recovered calls were made before this client's own.
      this.#entries = [...recovered, ...this.#entries];
      for (const e of recovered) this.#arm(e, undefined);
      this.#loaded = true;
      this.#flush();
    })();
  }

  // The number of calls waiting for their answer.
  get size(): number {
    return this.#entries.length;
  }

  // call sends a unary call through the outbox, with key (a random one
  // when undefined), and resolves with its REPLY; the request's signal
  // (the call's cancel and timeout) ends it, leftMs is its time left.
  call(r: UnaryRequest | StreamRequest, key: string | undefined, leftMs: number | undefined): Promise<WireEnvelope> {
    return new Promise((resolve, reject) => {
      key ??= newKey();
      if (!keyPattern.test(key)) {
        throw new ProtowsError("invalid_argument", "an idempotency key is 1 to 128 printable ASCII characters");
      }
      const call: StoredCall = {
        key,
        method: r.methodName,
        codec: this.#codec.subprotocol,
        payload: this.#codec.encodePayload(r.method.input, r.message),
        order: (this.#order = Math.max(this.#order + 1, Date.now() * 1024)),
      };
      if (Object.keys(r.metadata).length > 0) call.metadata = { ...r.metadata };
      if (leftMs !== undefined) call.deadline = Date.now() + leftMs;
      const e = this.#entry(call, (env, err) => {
        if (err !== undefined) reject(err);
        else if (env!.kind === Kind.ERROR) reject(wireError(env!));
        else resolve(env!);
      });
      this.#entries.push(e);
      this.#arm(e, r.signal);
      void this.#store(() => this.#storage?.put(call));
      this.#flush();
    });
  }

  // connected gives the outbox a ready connection: it sends what waits.
  connected(conn: Conn): void {
    this.#conn = conn;
    this.#flush();
  }

  // stop fails every call with err (the client closed or stopped for
  // good). Their copies stay in the storage for the next client, which
  // reports the recovered ones: they are not reported here.
  stop(err: ProtowsError): void {
    this.#stopped = true;
    const entries = this.#entries;
    this.#entries = [];
    for (const e of entries) {
      this.#unsend(e);
      this.#settle(e);
      if (e.recovered !== true) e.done(undefined, err);
    }
  }

  #entry(call: StoredCall, done: Entry["done"]): Entry {
    return { call, done, id: 0, unavailable: 0, waiting: false };
  }

  // arm ends the call when its signal aborts (a call of this client: its
  // cancel and timeout) or, for a recovered call, at its deadline.
  #arm(e: Entry, signal: AbortSignal | undefined): void {
    const d = e.call.deadline;
    if (signal === undefined && d !== undefined) {
      e.timer = setTimeout(
        () => this.#giveUp(e, new ProtowsError("deadline_exceeded", "no answer before the call's deadline")),
        Math.max(0, d - Date.now()),
      );
    }
    if (signal !== undefined) {
      // The reason is the ProtowsError the call fails with (CallControl).
      const onAbort = (): void =>
        this.#giveUp(e, signal.reason instanceof ProtowsError ? signal.reason : new ProtowsError("canceled", "call canceled", { cause: signal.reason }));
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      e.unlink = () => signal.removeEventListener("abort", onAbort);
    }
  }

  // giveUp drops a call that will not be answered: deadline or signal.
  #giveUp(e: Entry, err: ProtowsError): void {
    const conn = e.conn;
    if (conn !== undefined && conn.calls.delete(e.id)) conn.sendCancel(e.id);
    e.conn = undefined;
    this.#end(e, undefined, err);
  }

  // end removes a call from the outbox and its storage and reports how it ended.
  #end(e: Entry, env: WireEnvelope | undefined, err: ProtowsError | undefined): void {
    const i = this.#entries.indexOf(e);
    if (i >= 0) this.#entries.splice(i, 1);
    this.#settle(e);
    void this.#store(() => this.#storage?.delete(e.call.key));
    e.done(env, err);
    this.#flush(); // a slot is free
  }

  #settle(e: Entry): void {
    clearTimeout(e.timer);
    e.unlink?.();
  }

  #unsend(e: Entry): void {
    if (e.conn !== undefined) e.conn.calls.delete(e.id);
    e.conn = undefined;
  }

  async #store(op: () => void | Promise<void>): Promise<void> {
    try {
      await op();
    } catch {
      // The call goes on in memory; only a later client loses it.
    }
  }

  // flush sends, in order, the calls not in flight on the current
  // connection, up to maxInFlight.
  #flush(): void {
    const conn = this.#conn;
    if (!this.#loaded || conn === undefined || conn.ended || !conn.ready) return;
    let inFlight = 0;
    for (const e of this.#entries) if (e.conn === conn) inFlight++;
    for (const e of this.#entries) {
      if (inFlight >= maxInFlight) return;
      if (e.conn === conn || e.waiting) continue;
      this.#send(e, conn);
      inFlight++;
    }
  }

  #send(e: Entry, conn: Conn): void {
    const c = e.call;
    const id = conn.allocId();
    const env: WireEnvelope = { id, kind: Kind.REQUEST, payload: c.payload, idempotencyKey: c.key };
    if (this.#codec.sendsMethodId) env.methodId = methodId(c.method);
    else env.method = c.method;
    if (c.metadata !== undefined) env.metadata = c.metadata;
    if (c.deadline !== undefined) env.timeoutMs = Math.min(0xffffffff, Math.max(1, c.deadline - Date.now()));
    conn.calls.set(id, {
      onEnvelope: (answer) => {
        conn.calls.delete(id);
        e.conn = undefined;
        this.#answer(e, answer);
      },
      // The next connection sends it again.
      onLost: () => {
        if (e.conn === conn) e.conn = undefined;
      },
    });
    e.conn = conn;
    e.id = id;
    try {
      conn.send([env]);
    } catch {
      this.#unsend(e); // the connection is going; the next one sends it
    }
  }

  #answer(e: Entry, env: WireEnvelope): void {
    if (env.kind === Kind.ERROR && env.error?.code === 14 /* unavailable */ && e.unavailable < maxUnavailable) {
      e.waiting = true;
      setTimeout(
        () => {
          e.waiting = false;
          this.#flush();
        },
        backoffDelay(this.#backoff, e.unavailable++),
      );
      return;
    }
    if (env.kind !== Kind.REPLY && env.kind !== Kind.ERROR) {
      this.#end(e, undefined, new ProtowsError("internal", `unexpected ${Kind[env.kind]} for a unary call`));
      return;
    }
    this.#end(e, env, undefined);
  }
}

// newKey returns a new idempotency key: 128 random bits in base64url
// without padding, 22 characters (a UUID's 36 carry the same bits; the key
// travels with every send of its call). crypto.getRandomValues works in
// pages that are not secure contexts too, unlike crypto.randomUUID.
function newKey(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...b))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}
