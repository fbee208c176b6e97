// The Client: one connection to a protows server that stays up. It puts
// together the connection and its heartbeat (conn.ts), the reconnect
// (reconnect.ts), calls and streams (call.ts) and authentication
// (auth.ts), reports its state, and fails fast while it has never
// connected.

import type {
  DescMessage,
  DescMethodBiDiStreaming,
  DescMethodClientStreaming,
  DescMethodServerStreaming,
  DescMethodUnary,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import { Auth, type TokenProvider } from "./auth.js";
import { resolveBackoff, type Backoff, type BackoffOptions } from "./backoff.js";
import { CallControl, Calls, type BidiStream, type CallOptions, type ClientStreamOptions, type StreamOptions } from "./call.js";
import { closeAction, stopCode } from "./closecode.js";
import { jsonCodec, protoCodec, type Codec } from "./codec.js";
import { CallIds, Conn, type ConnConfig, type HeartbeatOptions, type WebSocketConstructor } from "./conn.js";
import { ProtowsError } from "./error.js";
import type { Interceptor } from "./interceptor.js";
import { methodName } from "./method.js";
import { Outbox, type OutboxStorage, type RecoveredCall } from "./outbox.js";
import { Reconnect } from "./reconnect.js";

/** The states of a client's connection. */
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "closed";

/** A change of connection state, given to state listeners. */
export interface StateChange {
  /** The new state. */
  readonly state: ConnectionState;
  /** reconnecting: the number of this reconnect attempt since the last healthy connection (from 1). */
  readonly attempt?: number;
  /** reconnecting: the delay before the next connection attempt, in ms. */
  readonly delayMs?: number;
  /**
   * reconnecting, closed: the close code of the connection that ended
   * (1006 when it dropped); compare it with CloseCode's names.
   */
  readonly closeCode?: number;
  /** reconnecting, closed: the close reason the server gave. */
  readonly closeReason?: string;
  /**
   * reconnecting, closed: true when the connection attempt that failed
   * never opened: the WebSocket handshake failed (the server is down or
   * refused it, the host, port or path is wrong, TLS failed) or did not
   * finish within connectTimeoutMs. A browser reports all of these as a
   * 1006 close and nothing more.
   */
  readonly neverOpened?: boolean;
  /**
   * closed: why the client stopped, unless close() was called.
   * reconnecting: why the connection attempt failed, when it failed before
   * the connection was ready (never opened, or closed during the handshake
   * or authentication): "cannot connect to <url>: ...". Until the client
   * has connected once, it is also the error calls fail with.
   */
  readonly error?: ProtowsError;
}

/** Options of a Client. Only url is required. */
export interface ClientOptions {
  /** The server's WebSocket URL, e.g. "wss://chat.example.com/ws". */
  url: string;
  /** The codec: "proto" (binary, the default) or "json" (text, readable in devtools). */
  codec?: "proto" | "json";
  /** The WebSocket constructor; default globalThis.WebSocket. On Node 20 pass `ws`'s WebSocket. */
  WebSocket?: WebSocketConstructor;
  /**
   * Returns the bearer token. When set, the client authenticates in band
   * (`/protows.v1.AuthService/Authenticate`, as browsers cannot set headers)
   * on every connection, again before the token expires, and after a 4009
   * or 4501 close. After a 4501 the client reconnects only when the token
   * it returns differs from the rejected one. Undefined: anonymous.
   */
  token?: TokenProvider;
  /** Refresh the token this long before it expires, in ms (at most a fifth of its lifetime). Default 60000. */
  tokenRefreshMarginMs?: number;
  /** Reconnect backoff. */
  backoff?: BackoffOptions;
  /** Heartbeat settings; false turns application pings off. */
  heartbeat?: HeartbeatOptions | false;
  /**
   * The default timeout of unary calls in ms, including the wait for a
   * connection; 0 (the default) means none. Calls do not hang on a server
   * that cannot be reached: until the client has connected once, a failed
   * connection attempt fails them (see Client).
   */
  requestTimeoutMs?: number;
  /** How long opening a connection (and authenticating) may take, in ms. Default 10000. */
  connectTimeoutMs?: number;
  /** Called on every state change. */
  onStateChange?: (change: StateChange) => void;
  /**
   * Interceptors wrap every unary call and server stream the client makes
   * (generated clients and createClient included): the first sees the
   * request first and the response last. See Interceptor.
   */
  interceptors?: readonly Interceptor[];
  /**
   * Where calls made with exactlyOnce or idempotencyKey are kept until
   * they are answered, besides memory (the default: nowhere else). A
   * client started with a storage sends again the calls it finds there
   * (an earlier client's, before a page reload), before its own, and
   * reports their answers to onRecoveredCall. Browsers:
   * `indexedDBStorage()` of `@protows/client/indexeddb`.
   */
  outboxStorage?: OutboxStorage;
  /**
   * Called with the answer of each call found in outboxStorage at start,
   * whose promise went with the earlier client.
   */
  onRecoveredCall?: (call: RecoveredCall) => void;
}

// What the client knows about a connection attempt that failed before it
// was ready, for the state change that follows.
interface Failure {
  readonly neverOpened: boolean;
  readonly error: ProtowsError;
}

interface Waiter {
  resolve(conn: Conn): void;
  reject(err: unknown): void;
}

/**
 * Client is a connection to a protows server that stays up: it reconnects
 * with backoff, re-authenticates, reopens streams and pings. It connects
 * when created; close() ends it. `Client.connect(options)` is the other
 * way to make one: it waits for the first connection and fails when it
 * cannot be made, like the Go client's `Dial`.
 *
 * Until the client has connected once, calls fail fast: a connection
 * attempt that fails (refused, wrong path, timed out, closed during the
 * handshake) fails the calls waiting for it with `unavailable` ("cannot
 * connect to <url>: ..."), and calls made while the next attempt is
 * scheduled fail at once with the same error; the client keeps trying in
 * the background and reports each failure as a `reconnecting` state change
 * with that `error` (and `neverOpened`). A refused token is the exception:
 * the client asks the token provider for another and the calls wait for
 * the attempt with it. Once the client has connected, calls made while it
 * reconnects wait for the connection, up to their timeout. Calls in flight
 * when the connection drops fail with `unavailable` (its `cause` a
 * ConnectionLostError), unless marked idempotent.
 */
export class Client {
  readonly #codec: Codec;
  readonly #connConfig: ConnConfig;
  readonly #backoff: Backoff;
  readonly #calls: Calls;
  readonly #auth: Auth;
  readonly #reconnect: Reconnect;
  readonly #outbox: Outbox;
  readonly #listeners = new Set<(c: StateChange) => void>();

  #state: ConnectionState = "connecting";
  #conn: Conn | undefined;
  #closed = false; // close() called or a close code said stop
  #terminal: ProtowsError | undefined;
  #waiters = new Set<Waiter>();
  // A connection was ready once: from then on, calls wait for reconnects.
  #everReady = false;
  // Client.connect: the first failed attempt stops the client.
  #dial = false;
  // Until the first connection: the error of the last failed attempt.
  #connectError: ProtowsError | undefined;
  // The failure of the attempt that just ended, for its state change.
  #failure: Failure | undefined;
  #rttMs: number | undefined;
  #pingWaiters = new Set<{ resolve(rtt: number): void; reject(err: unknown): void }>();

  constructor(options: ClientOptions) {
    this.#codec = options.codec === "json" ? jsonCodec() : protoCodec();
    const ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (ctor === undefined) {
      throw new TypeError("protows: no WebSocket: pass options.WebSocket (on Node 20, the ws package's WebSocket)");
    }
    const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.#connConfig = {
      url: options.url,
      codec: this.#codec,
      WebSocket: ctor,
      heartbeat:
        options.heartbeat === false
          ? undefined
          : { idleMs: options.heartbeat?.idleMs ?? 15_000, timeoutMs: options.heartbeat?.timeoutMs ?? 10_000 },
      connectTimeoutMs,
      ids: new CallIds(),
    };
    this.#backoff = resolveBackoff(options.backoff);
    this.#outbox = new Outbox(this.#codec, this.#backoff, options.outboxStorage, options.onRecoveredCall);
    this.#calls = new Calls(
      this.#codec,
      this.#backoff,
      options.requestTimeoutMs ?? 0,
      (signal) => this.#waitConnected(signal),
      options.interceptors ?? [],
      this.#outbox,
    );
    this.#auth = new Auth(options.token, options.tokenRefreshMarginMs ?? 60_000, connectTimeoutMs, this.#calls);
    this.#reconnect = new Reconnect(this.#backoff, {
      connect: () => this.#connect(),
      reconnecting: (attempt, delayMs, closeCode, closeReason) =>
        this.#setState({ state: "reconnecting", attempt, delayMs, closeCode, closeReason, ...this.#failure }),
      stop: (err, code, reason) => this.#stop(err, code, reason),
      closed: () => this.#closed,
      afterRejectedToken: (unauth) => this.#auth.afterRejected(unauth),
    });
    if (options.onStateChange !== undefined) {
      this.#listeners.add(options.onStateChange);
    }
    this.#setState({ state: "connecting" });
    this.#connect();
  }

  /**
   * connect makes a client and resolves with it once its first connection
   * is ready (opened and, with a token, authenticated), as the Go client's
   * `Dial` does. When that first attempt fails, the client is closed and
   * the promise rejects with a ProtowsError saying why: "cannot connect to
   * <url>: ...", `unavailable` (or the code of a close that stops the
   * client, such as `unauthenticated` for a refused token).
   * connectTimeoutMs bounds the wait. After that the client is the same
   * as one made with `new Client`.
   */
  static async connect(options: ClientOptions): Promise<Client> {
    const client = new Client(options);
    // Set before anything can happen: the constructor's events come later.
    client.#dial = true;
    try {
      await client.#waitConnected(new AbortController().signal);
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  /** The current connection state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** The last round-trip time measured by a PING/PONG, in ms; undefined before the first. */
  get rttMs(): number | undefined {
    return this.#rttMs;
  }

  /** The negotiated subprotocol: "protows.v1.proto" or "protows.v1.json". */
  get subprotocol(): string {
    return this.#codec.subprotocol;
  }

  /** addStateListener calls fn on every state change; it returns a function that removes it. */
  addStateListener(fn: (change: StateChange) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /**
   * unary calls a unary method. It resolves with the response, or rejects
   * with a ProtowsError: the server's error, `canceled` (signal),
   * `deadline_exceeded` (timeout), `unavailable` (connection lost while in
   * flight, or the client closed for good).
   */
  async unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    request: MessageInitShape<I>,
    options: CallOptions = {},
  ): Promise<MessageShape<O>> {
    if (method.methodKind !== "unary") {
      throw new TypeError(`protows: ${methodName(method)} is not a unary method`);
    }
    if (options.exactlyOnce === true || options.idempotencyKey !== undefined) {
      if (this.#terminal !== undefined) throw this.#terminal;
    }
    return this.#calls.unary(method, request, options);
  }

  /** The number of calls made with exactlyOnce or idempotencyKey that wait for their answer. */
  get outboxSize(): number {
    return this.#outbox.size;
  }

  /**
   * serverStream calls a server-streaming method. Iterating yields the
   * messages; it ends when the server ends the stream and throws a
   * ProtowsError when the stream fails. Breaking out of the loop or
   * aborting the signal cancels the stream on the server. By default the
   * stream survives reconnects: the request is sent again and the new
   * stream's messages follow (see StreamOptions.resubscribe).
   * StreamOptions.onMessageInfo reports each message's room sequence number
   * and whether messages may be missing before it (a gap).
   */
  serverStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodServerStreaming<I, O>,
    request: MessageInitShape<I>,
    options: StreamOptions = {},
  ): AsyncIterable<MessageShape<O>> {
    if (method.methodKind !== "server_streaming") {
      throw new TypeError(`protows: ${methodName(method)} is not a server-streaming method`);
    }
    return this.#calls.stream(method, request, options);
  }

  /**
   * clientStream calls a client-streaming method: it sends the messages of
   * `requests` as the server's credit allows (waiting for it, so a slow
   * handler slows the producer), then half-closes, and resolves with the
   * response. It rejects with a ProtowsError: the server's error,
   * `canceled` (signal), `deadline_exceeded` (timeoutMs), `unavailable`
   * (the connection dropped: such a call is never resumed); or with what
   * `requests` threw, after cancelling the call. When the server ends the
   * call early, the client stops taking requests and the outcome is the
   * server's.
   */
  clientStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodClientStreaming<I, O>,
    requests: AsyncIterable<MessageInitShape<I>> | Iterable<MessageInitShape<I>>,
    options: ClientStreamOptions = {},
  ): Promise<MessageShape<O>> {
    if (method.methodKind !== "client_streaming") {
      throw new TypeError(`protows: ${methodName(method)} is not a client-streaming method`);
    }
    return this.#calls.clientStream(method, requests, options);
  }

  /**
   * bidiStream opens a bidirectional call and returns at once: `send` and
   * `closeSend` write (send waits for the server's credit), iterating reads
   * the server's messages (their window is granted back as the loop takes
   * them). The call ends with the server's end of it, a failure (the
   * iteration throws; `unavailable` when the connection dropped: the call
   * is never resumed), `close`, breaking out of the loop, the signal or
   * timeoutMs.
   */
  bidiStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodBiDiStreaming<I, O>,
    options: ClientStreamOptions = {},
  ): BidiStream<I, O> {
    if (method.methodKind !== "bidi_streaming") {
      throw new TypeError(`protows: ${methodName(method)} is not a bidirectional method`);
    }
    return this.#calls.bidi(method, options);
  }

  /**
   * ping sends a PING now and resolves with the round-trip time in ms (also
   * available as rttMs afterwards). It waits for a connection first.
   */
  async ping(signal?: AbortSignal): Promise<number> {
    const ctl = new CallControl(signal, 0);
    try {
      const conn = await this.#waitConnected(ctl.signal);
      return await new Promise<number>((resolve, reject) => {
        const w = { resolve, reject };
        this.#pingWaiters.add(w);
        ctl.signal.addEventListener("abort", () => {
          this.#pingWaiters.delete(w);
          reject(ctl.signal.reason);
        });
        conn.ping();
      });
    } finally {
      ctl.dispose();
    }
  }

  /**
   * close ends the client: the connection closes with 1000, pending calls
   * fail with `canceled`, and the client never reconnects.
   */
  close(): void {
    if (this.#closed && this.#state === "closed") {
      return;
    }
    this.#closed = true;
    this.#terminal = new ProtowsError("canceled", "client closed");
    this.#reconnect.cancel();
    const conn = this.#conn;
    this.#conn = undefined;
    if (conn !== undefined) {
      conn.end(this.#terminal);
      try {
        conn.ws.close(1000, "");
      } catch {
        // Already closing.
      }
    }
    this.#failWaiters(this.#terminal);
    this.#outbox.stop(this.#terminal);
    this.#setState({ state: "closed" });
  }

  #setState(change: StateChange): void {
    this.#state = change.state;
    for (const fn of this.#listeners) {
      try {
        fn(change);
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  #waitConnected(signal: AbortSignal): Promise<Conn> {
    if (this.#terminal !== undefined) {
      return Promise.reject(this.#terminal);
    }
    const conn = this.#conn;
    if (conn !== undefined && conn.ready) {
      return Promise.resolve(conn);
    }
    if (conn === undefined && this.#connectError !== undefined) {
      // Never connected, and the next attempt is not under way: fail fast.
      return Promise.reject(this.#connectError);
    }
    return new Promise<Conn>((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = (): void => {
        this.#waiters.delete(w);
        reject(signal.reason);
      };
      const w: Waiter = {
        resolve: (c) => {
          signal.removeEventListener("abort", onAbort);
          resolve(c);
        },
        reject: (err) => {
          signal.removeEventListener("abort", onAbort);
          reject(err);
        },
      };
      this.#waiters.add(w);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  #failWaiters(err: ProtowsError): void {
    const ws = [...this.#waiters];
    this.#waiters.clear();
    for (const w of ws) w.reject(err);
    const ps = [...this.#pingWaiters];
    this.#pingWaiters.clear();
    for (const p of ps) p.reject(err);
  }

  #connect(): void {
    if (this.#closed) {
      return;
    }
    try {
      this.#conn = new Conn(this.#connConfig, {
        opened: (conn) => void this.#opened(conn),
        closed: (conn, code, reason) => this.#connClosed(conn, code, reason),
        pong: (rtt) => this.#pong(rtt),
      });
    } catch (err) {
      this.#stop(new ProtowsError("invalid_argument", `cannot open ${this.#connConfig.url}: ${String(err)}`), 0, "");
    }
  }

  // The socket is open: authenticate, then let the calls in.
  async #opened(conn: Conn): Promise<void> {
    if (!(await this.#auth.handshake(conn)) || conn.ended) {
      return;
    }
    conn.markReady();
    this.#everReady = true;
    this.#connectError = undefined;
    conn.timer("healthy", () => this.#reconnect.healthy(), this.#backoff.resetAfterMs);
    this.#setState({ state: "connected" });
    const ws = [...this.#waiters];
    this.#waiters.clear();
    for (const w of ws) w.resolve(conn);
    this.#outbox.connected(conn);
  }

  #connClosed(conn: Conn, code: number, reason: string): void {
    if (this.#conn !== conn) return;
    this.#conn = undefined;
    if (this.#closed) return;
    if (conn.ready) {
      this.#failure = undefined;
      this.#reconnect.afterClose(code, reason);
      return;
    }
    // An attempt that failed before the connection was ready.
    const error = connectFailure(this.#connConfig.url, conn, code, reason);
    this.#failure = { neverOpened: !conn.opened, error };
    if (!this.#everReady) {
      if (this.#dial) {
        this.#stop(error, code, reason);
        return;
      }
      // A refused or expired token is the client's to fix: it asks the
      // provider for another and tries again (or stops, failing the calls).
      const action = closeAction(code);
      if (action === "token" || action === "refresh") {
        this.#connectError = undefined;
      } else {
        this.#connectError = error;
        this.#failWaiters(error);
      }
    }
    this.#reconnect.afterClose(code, reason, error);
  }

  #pong(rtt: number): void {
    this.#rttMs = rtt;
    const ps = [...this.#pingWaiters];
    this.#pingWaiters.clear();
    for (const p of ps) p.resolve(rtt);
  }

  #stop(err: ProtowsError, code: number, reason: string): void {
    this.#closed = true;
    this.#terminal = err;
    this.#failWaiters(err);
    this.#outbox.stop(err);
    this.#setState({ state: "closed", closeCode: code, closeReason: reason, ...this.#failure, error: err });
  }
}

// connectFailure is the error of a connection attempt that ended before
// the connection was ready: the WebSocket did not open, or it closed
// during the handshake or authentication. Its code is the one the client
// stops with after such a close, else unavailable: also for a refused
// handshake whose HTTP status the WebSocket named (Node's ws does), so
// that the client behaves in Node as in a browser, which never names it.
function connectFailure(url: string, conn: Conn, code: number, reason: string): ProtowsError {
  const action = closeAction(code);
  const detail = conn.error?.message;
  const closed = `${code}${reason === "" ? "" : ` ${reason}`}${detail === undefined ? "" : `: ${detail}`}`;
  return new ProtowsError(
    action === "stop" ? stopCode(code) : action === "token" ? "unauthenticated" : "unavailable",
    `cannot connect to ${url}: ${
      conn.opened
        ? `the connection closed before it was ready (${closed})`
        : `the WebSocket did not open (${closed}): the server is down or refused it, or the host, port or path is wrong`
    }`,
    { cause: conn.error },
  );
}
