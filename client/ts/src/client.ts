import {
  create,
  type DescMessage,
  type DescMethod,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { backoffDelay, closeAction, resolveBackoff, stopCode, type Backoff, type BackoffOptions } from "./backoff.js";
import { jsonCodec, protoCodec, type Codec, type WireEnvelope } from "./codec.js";
import { ProtowsError } from "./error.js";
import { AuthService, Kind } from "./gen/protows/v1/protows_pb.js";
import { methodId, methodName } from "./method.js";

/**
 * The part of the WHATWG WebSocket the client uses: browsers' WebSocket,
 * Node 22's global one, and the `ws` package all have it.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly protocol: string;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: string | ArrayBufferView | ArrayBufferLike): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor, such as `globalThis.WebSocket` or `ws`'s WebSocket. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

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
  /** reconnecting, closed: the close code of the connection that ended (1006 when it dropped). */
  readonly closeCode?: number;
  /** reconnecting, closed: the close reason the server gave. */
  readonly closeReason?: string;
  /** closed: why the client stopped, unless close() was called. */
  readonly error?: ProtowsError;
}

/** Heartbeat settings (application PING/PONG, docs/PROTOCOL.md section 7). */
export interface HeartbeatOptions {
  /** Send a PING after this long without receiving anything, in ms. Default 15000. */
  idleMs?: number;
  /** Declare the link dead when the PONG has not come after this long, in ms. Default 10000. */
  timeoutMs?: number;
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
  token?: () => string | Promise<string>;
  /** Refresh the token this long before it expires, in ms (at most a fifth of its lifetime). Default 60000. */
  tokenRefreshMarginMs?: number;
  /** Reconnect backoff. */
  backoff?: BackoffOptions;
  /** Heartbeat settings; false turns application pings off. */
  heartbeat?: HeartbeatOptions | false;
  /** The default timeout of unary calls in ms, including the wait for a connection; 0 (the default) means none. */
  requestTimeoutMs?: number;
  /** How long opening a connection (and authenticating) may take, in ms. Default 10000. */
  connectTimeoutMs?: number;
  /** Called on every state change. */
  onStateChange?: (change: StateChange) => void;
}

/**
 * Options of one call. The generated clients take this type for unary
 * calls and streams alike; fields that concern only one of them say so.
 */
export interface CallOptions {
  /**
   * Aborting cancels the call: a CANCEL goes to the server and the call
   * fails (the stream's iteration throws) with `canceled`.
   */
  signal?: AbortSignal;
  /**
   * Unary calls: the timeout in ms (default: the client's requestTimeoutMs),
   * including the wait for a connection; the call then fails with
   * `deadline_exceeded` and a CANCEL goes to the server.
   */
  timeoutMs?: number;
  /**
   * Unary calls: the call has no side effects that matter when repeated, so
   * if the connection drops while it is in flight it is sent again after the
   * reconnect (up to 3 times) instead of failing with `unavailable`.
   */
  idempotent?: boolean;
  /**
   * Streams: after the connection dropped, or after the server ended the
   * stream with `unavailable` (it is draining or restarting) or with a
   * `canceled` this client did not ask for (the server cancels its calls at
   * shutdown), send the request again once connected and go on with the new
   * stream's messages; the first of them has `gap: true` (see
   * onMessageInfo). Default true; false ends the stream with the error
   * instead (`unavailable` after a dropped connection).
   */
  resubscribe?: boolean;
  /** Request metadata (string keys and values, keys in lower case). */
  metadata?: Record<string, string>;
  /**
   * Streams: called with the room sequence number and the gap flag of each
   * message (StreamMessageInfo), synchronously, just before the iteration
   * yields that message, so the call always describes the message the loop
   * body receives next. An exception it throws ends the stream (the
   * iteration throws it, and a CANCEL goes to the server).
   */
  onMessageInfo?: (info: StreamMessageInfo) => void;
  /**
   * Unary calls: called with the REPLY's metadata (docs/PROTOCOL.md section
   * 3.4; an empty object when the server set none) just before the call
   * resolves with the response. With `idempotent`, only the reply that
   * resolves the call is reported.
   */
  onReplyMetadata?: (metadata: Record<string, string>) => void;
}

/**
 * What the client knows about one stream message besides its content: the
 * same as Go's `ServerStream.Seq()` and `ServerStream.Gap()`.
 */
export interface StreamMessageInfo {
  /**
   * The room sequence number (docs/PROTOCOL.md section 3.5) of a message of
   * a stream that is a subscription to a room; 0 when the message is not
   * sequenced (ordinary stream messages, messages sent to one member).
   * Numbers of different streams, and of one stream before and after a
   * gap that reports a re-open, are not comparable.
   */
  readonly seq: number;
  /**
   * True when messages may be missing just before this one: the stream was
   * re-opened (resubscribe) before it, or its seq does not follow the
   * previous non-zero seq of the stream (it skips ahead, say 7 after 5,
   * because the server could not deliver some room messages, or goes back
   * because the numbering restarted). A seq of 0 neither starts nor hides
   * a gap. On a gap, applications that must not miss messages resync: they
   * reload the state or ask for what came after the last message they have.
   */
  readonly gap: boolean;
}

/** Options of a server stream: the CallOptions that apply to streams. */
export type StreamOptions = Pick<CallOptions, "signal" | "resubscribe" | "metadata" | "onMessageInfo">;

const maxIdempotentRetries = 3;

// Outcomes of a call on one connection, as delivered to its handler.
interface CallHandler {
  onEnvelope(env: WireEnvelope): void;
  onLost(err: ProtowsError): void;
}

// One WebSocket and what belongs to it; replaced on every reconnect.
interface Conn {
  readonly ws: WebSocketLike;
  readonly calls: Map<number, CallHandler>;
  ready: boolean;
  ended: boolean;
  lastReceived: number;
  pingId: number;
  pingSentAt: number;
  lastError?: ProtowsError; // ERROR with id 0, reported just before a close
  heartbeatTimer?: ReturnType<typeof setTimeout>;
  connectTimer?: ReturnType<typeof setTimeout>;
  refreshTimer?: ReturnType<typeof setTimeout>;
  healthyTimer?: ReturnType<typeof setTimeout>;
}

interface Waiter {
  resolve(conn: Conn): void;
  reject(err: unknown): void;
}

// Errors made for calls whose connection dropped: these, and only these,
// may be retried (idempotent calls) or resubscribed (streams).
const linkLost = new WeakSet<ProtowsError>();

/**
 * Client is a connection to a protows server that stays up: it reconnects
 * with backoff, re-authenticates, reopens streams and pings. It connects
 * when created; close() ends it.
 *
 * Calls made while the client is (re)connecting wait for the connection,
 * up to their timeout. Calls in flight when the connection drops fail with
 * `unavailable`, unless marked idempotent.
 */
export class Client {
  readonly #url: string;
  readonly #codec: Codec;
  readonly #WebSocket: WebSocketConstructor;
  readonly #token: (() => string | Promise<string>) | undefined;
  readonly #refreshMarginMs: number;
  readonly #backoff: Backoff;
  readonly #heartbeat: Required<HeartbeatOptions> | undefined;
  readonly #requestTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #listeners = new Set<(c: StateChange) => void>();

  #state: ConnectionState = "connecting";
  #conn: Conn | undefined;
  #closed = false; // close() called or a close code said stop
  #terminal: ProtowsError | undefined;
  #waiters = new Set<Waiter>();
  #attempt = 0;
  #nextId = 1;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #rejectedToken: string | undefined; // the token of the last 4501
  #lastToken: string | undefined;
  #pendingToken: string | undefined; // fetched after a 4501, used by the next connection
  #rttMs: number | undefined;
  #pingWaiters = new Set<{ resolve(rtt: number): void; reject(err: unknown): void }>();

  constructor(options: ClientOptions) {
    this.#url = options.url;
    this.#codec = options.codec === "json" ? jsonCodec() : protoCodec();
    const ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (ctor === undefined) {
      throw new TypeError("protows: no WebSocket: pass options.WebSocket (on Node 20, the ws package's WebSocket)");
    }
    this.#WebSocket = ctor;
    this.#token = options.token;
    this.#refreshMarginMs = options.tokenRefreshMarginMs ?? 60_000;
    this.#backoff = resolveBackoff(options.backoff);
    this.#heartbeat =
      options.heartbeat === false
        ? undefined
        : { idleMs: options.heartbeat?.idleMs ?? 15_000, timeoutMs: options.heartbeat?.timeoutMs ?? 10_000 };
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 0;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    if (options.onStateChange !== undefined) {
      this.#listeners.add(options.onStateChange);
    }
    this.#setState({ state: "connecting" });
    this.#connect();
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
    const ctl = new CallControl(options.signal, options.timeoutMs ?? this.#requestTimeoutMs);
    try {
      const req = this.#request(method, request, options.metadata);
      for (let attempt = 0; ; attempt++) {
        const conn = await this.#waitConnected(ctl.signal);
        try {
          const env = await this.#exchangeUnary(conn, req, ctl.signal);
          const res = this.#codec.decodePayload(method.output, env.payload) as MessageShape<O>;
          options.onReplyMetadata?.({ ...env.metadata });
          return res;
        } catch (err) {
          if (options.idempotent === true && attempt < maxIdempotentRetries && isLinkLost(err)) {
            continue;
          }
          throw err;
        }
      }
    } finally {
      ctl.dispose();
    }
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
    return this.#stream(method, request, options);
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
        if (conn.pingSentAt === 0) {
          this.#sendPing(conn);
        }
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
    clearTimeout(this.#reconnectTimer);
    const conn = this.#conn;
    this.#conn = undefined;
    if (conn !== undefined) {
      this.#endConn(conn, this.#terminal);
      try {
        conn.ws.close(1000, "");
      } catch {
        // Already closing.
      }
    }
    this.#failWaiters(this.#terminal);
    this.#setState({ state: "closed" });
  }

  // --- calls ---

  #request(method: DescMethod, init: unknown, metadata: Record<string, string> | undefined): WireEnvelope {
    const msg = create(method.input, init as MessageInitShape<DescMessage>);
    const name = methodName(method);
    const env: WireEnvelope = { id: 0, kind: Kind.REQUEST, payload: this.#codec.encodePayload(method.input, msg) };
    if (this.#codec.sendsMethodId) {
      env.methodId = methodId(name);
    } else {
      env.method = name;
    }
    if (metadata !== undefined && Object.keys(metadata).length > 0) {
      env.metadata = metadata;
    }
    return env;
  }

  #allocId(conn: Conn): number {
    for (;;) {
      const id = this.#nextId;
      this.#nextId = id >= 0xffffffff ? 1 : id + 1;
      if (!conn.calls.has(id)) {
        return id;
      }
    }
  }

  #send(conn: Conn, envs: WireEnvelope[]): void {
    conn.ws.send(this.#codec.encodeFrame(envs));
  }

  // Sends a REQUEST on conn and resolves with its REPLY.
  #exchangeUnary(conn: Conn, req: WireEnvelope, signal: AbortSignal | undefined): Promise<WireEnvelope> {
    return new Promise<WireEnvelope>((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(signal.reason);
        return;
      }
      if (conn.ended) {
        // The connection ended between the wait for it and now.
        const lost = new ProtowsError("unavailable", "connection closed");
        linkLost.add(lost);
        reject(lost);
        return;
      }
      const id = this.#allocId(conn);
      const onAbort = (): void => {
        if (conn.calls.delete(id)) {
          this.#sendCancel(conn, id);
        }
        reject(signal!.reason);
      };
      const finish = (): void => {
        conn.calls.delete(id);
        signal?.removeEventListener("abort", onAbort);
      };
      conn.calls.set(id, {
        onEnvelope: (env) => {
          finish();
          if (env.kind === Kind.REPLY) {
            resolve(env);
          } else if (env.kind === Kind.ERROR) {
            reject(wireError(env));
          } else {
            reject(new ProtowsError("internal", `unexpected ${Kind[env.kind]} for a unary call`));
          }
        },
        onLost: (err) => {
          finish();
          reject(err);
        },
      });
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        this.#send(conn, [{ ...req, id }]);
      } catch (err) {
        finish();
        reject(new ProtowsError("unavailable", "send failed", { cause: err }));
      }
    });
  }

  #sendCancel(conn: Conn, id: number): void {
    if (conn.ended) {
      return;
    }
    try {
      this.#send(conn, [{ id, kind: Kind.CANCEL }]);
    } catch {
      // The connection is going; the server cancels its calls anyway.
    }
  }

  async *#stream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodServerStreaming<I, O>,
    request: MessageInitShape<I>,
    options: StreamOptions,
  ): AsyncGenerator<MessageShape<O>> {
    const resubscribe = options.resubscribe ?? true;
    const ctl = new CallControl(options.signal, 0);
    try {
      const req = this.#request(method, request, options.metadata);
      let unavailableAttempt = 0;
      // The gap state, as in the Go client's streamCore: gapPending after a
      // re-open, lastSeq the last non-zero seq since the stream was opened.
      let gapPending = false;
      let lastSeq = 0;
      for (;;) {
        const conn = await this.#waitConnected(ctl.signal);
        if (conn.ended) continue; // ended between the wait and now: wait for the next
        const sub = new Subscription(conn, this.#allocId(conn), ctl.signal, (c, id) => this.#sendCancel(c, id));
        try {
          this.#send(conn, [{ ...req, id: sub.id }]);
        } catch (err) {
          sub.dispose();
          throw new ProtowsError("unavailable", "send failed", { cause: err });
        }
        try {
          let resend = false;
          while (!resend) {
            const item = await sub.next();
            switch (item.kind) {
              case "message": {
                unavailableAttempt = 0;
                const msg = this.#codec.decodePayload(method.output, item.payload) as MessageShape<O>;
                const seq = item.seq;
                const gap = gapPending || seqSkips(lastSeq, seq);
                gapPending = false;
                if (seq !== 0) lastSeq = seq;
                options.onMessageInfo?.({ seq, gap });
                yield msg;
                break;
              }
              case "end":
                if (item.error === undefined) {
                  return;
                }
                if (resubscribe && serverWentAway(item.error)) {
                  // The server is draining or restarting: try again, with
                  // backoff, on this connection or the next. The numbers
                  // of the new stream are not comparable with these.
                  gapPending = true;
                  lastSeq = 0;
                  await sleep(backoffDelay(this.#backoff, unavailableAttempt++), ctl.signal);
                  resend = true;
                  break;
                }
                throw item.error;
              case "lost":
                if (!resubscribe) {
                  throw item.error;
                }
                gapPending = true;
                lastSeq = 0;
                resend = true;
                break;
            }
          }
        } finally {
          sub.dispose();
        }
      }
    } finally {
      ctl.dispose();
    }
  }

  // --- connection ---

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

  #waitConnected(signal: AbortSignal | undefined): Promise<Conn> {
    if (this.#terminal !== undefined) {
      return Promise.reject(this.#terminal);
    }
    const conn = this.#conn;
    if (conn !== undefined && conn.ready) {
      return Promise.resolve(conn);
    }
    return new Promise<Conn>((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(signal.reason);
        return;
      }
      const onAbort = (): void => {
        this.#waiters.delete(w);
        reject(signal!.reason);
      };
      const w: Waiter = {
        resolve: (c) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(c);
        },
        reject: (err) => {
          signal?.removeEventListener("abort", onAbort);
          reject(err);
        },
      };
      this.#waiters.add(w);
      signal?.addEventListener("abort", onAbort, { once: true });
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
    this.#reconnectTimer = undefined;
    if (this.#closed) {
      return;
    }
    let ws: WebSocketLike;
    try {
      ws = new this.#WebSocket(this.#url, [this.#codec.subprotocol]);
    } catch (err) {
      this.#stop(new ProtowsError("invalid_argument", `cannot open ${this.#url}: ${String(err)}`), 0, "");
      return;
    }
    ws.binaryType = "arraybuffer";
    const conn: Conn = {
      ws,
      calls: new Map(),
      ready: false,
      ended: false,
      lastReceived: Date.now(),
      pingId: 0,
      pingSentAt: 0,
    };
    this.#conn = conn;
    conn.connectTimer = setTimeout(() => {
      this.#abandon(conn, 4000, "connect timeout");
    }, this.#connectTimeoutMs);
    ws.onopen = () => {
      if (conn.ended) return;
      if (ws.protocol !== this.#codec.subprotocol) {
        this.#abandon(conn, 1002, `server chose subprotocol "${ws.protocol}"`);
        return;
      }
      this.#startHeartbeat(conn);
      void this.#handshake(conn);
    };
    ws.onmessage = (ev: { data: unknown }) => this.#onMessage(conn, ev.data);
    ws.onclose = (ev: { code?: number; reason?: string }) => this.#onClose(conn, ev.code ?? 1006, ev.reason ?? "");
    ws.onerror = () => {
      // A close event follows; it carries what there is to know.
    };
  }

  // Authenticates (when there is a token) and marks the connection ready.
  async #handshake(conn: Conn): Promise<void> {
    if (this.#token !== undefined) {
      let token: string;
      let expiresAt: bigint;
      try {
        token = await this.#nextToken();
        const res = await this.#authenticate(conn, token);
        expiresAt = res.expiresAt;
      } catch (err) {
        if (conn.ended) return;
        if (err instanceof ProtowsError && err.code === "unauthenticated") {
          // The server closes with 4501 right after; #onClose decides.
          return;
        }
        if (!(err instanceof ProtowsError && err.code === "unimplemented")) {
          this.#abandon(conn, 4000, `authentication failed: ${String(err)}`);
          return;
        }
        // A server without an authenticator: the connection is anonymous.
        expiresAt = 0n;
      }
      if (conn.ended) return;
      this.#scheduleRefresh(conn, expiresAt);
    }
    if (conn.ended) return;
    clearTimeout(conn.connectTimer);
    conn.ready = true;
    conn.healthyTimer = setTimeout(() => {
      this.#attempt = 0;
    }, this.#backoff.resetAfterMs);
    this.#setState({ state: "connected" });
    const ws = [...this.#waiters];
    this.#waiters.clear();
    for (const w of ws) w.resolve(conn);
  }

  async #nextToken(): Promise<string> {
    const pending = this.#pendingToken;
    this.#pendingToken = undefined;
    const token = pending ?? (await this.#token!());
    this.#lastToken = token;
    return token;
  }

  async #authenticate(conn: Conn, token: string): Promise<{ expiresAt: bigint }> {
    const method = AuthService.method.authenticate;
    const req = this.#request(method, { token }, undefined);
    const ctl = new CallControl(undefined, this.#connectTimeoutMs);
    try {
      const env = await this.#exchangeUnary(conn, req, ctl.signal);
      return this.#codec.decodePayload(method.output, env.payload);
    } finally {
      ctl.dispose();
    }
  }

  #scheduleRefresh(conn: Conn, expiresAt: bigint): void {
    clearTimeout(conn.refreshTimer);
    if (expiresAt <= 0n) {
      return;
    }
    const lifetime = Number(expiresAt) * 1000 - Date.now();
    const margin = Math.min(this.#refreshMarginMs, Math.max(0, lifetime) / 5);
    conn.refreshTimer = setTimeout(
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

  #onMessage(conn: Conn, data: unknown): void {
    if (conn.ended) return;
    conn.lastReceived = Date.now();
    let envs: WireEnvelope[];
    try {
      const frame =
        typeof data === "string"
          ? data
          : data instanceof ArrayBuffer
            ? new Uint8Array(data)
            : ArrayBuffer.isView(data)
              ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
              : String(data);
      envs = this.#codec.decodeFrame(frame);
    } catch {
      this.#abandon(conn, typeof data === "string" && this.#codec.binary ? 1003 : 1007, "undecodable frame");
      return;
    }
    for (const env of envs) {
      switch (env.kind) {
        case Kind.REPLY:
        case Kind.STREAM_MESSAGE:
        case Kind.STREAM_END:
        case Kind.ERROR:
          if (env.kind === Kind.ERROR && env.id === 0) {
            conn.lastError = wireError(env);
            break;
          }
          // Envelopes for calls no longer in flight (cancelled) are dropped.
          conn.calls.get(env.id)?.onEnvelope(env);
          break;
        case Kind.PING:
          try {
            this.#send(conn, [{ id: env.id, kind: Kind.PONG }]);
          } catch {
            // The close event will follow.
          }
          break;
        case Kind.PONG:
          if (conn.pingSentAt !== 0 && env.id === conn.pingId) {
            const rtt = Date.now() - conn.pingSentAt;
            conn.pingSentAt = 0;
            this.#rttMs = rtt;
            const ps = [...this.#pingWaiters];
            this.#pingWaiters.clear();
            for (const p of ps) p.resolve(rtt);
          }
          break;
        default:
          // REQUEST or CANCEL from a server, or a kind from the future:
          // nothing this client can act on.
          break;
      }
      if (conn.ended) return;
    }
  }

  #startHeartbeat(conn: Conn): void {
    const hb = this.#heartbeat;
    if (hb === undefined) return;
    const check = (): void => {
      if (conn.ended) return;
      const now = Date.now();
      if (conn.pingSentAt !== 0) {
        const waited = now - conn.pingSentAt;
        if (waited >= hb.timeoutMs) {
          this.#abandon(conn, 4002, "heartbeat timeout");
          return;
        }
        conn.heartbeatTimer = setTimeout(check, hb.timeoutMs - waited);
        return;
      }
      const idle = now - conn.lastReceived;
      if (idle >= hb.idleMs) {
        this.#sendPing(conn);
        conn.heartbeatTimer = setTimeout(check, hb.timeoutMs);
        return;
      }
      conn.heartbeatTimer = setTimeout(check, hb.idleMs - idle);
    };
    conn.heartbeatTimer = setTimeout(check, hb.idleMs);
  }

  #sendPing(conn: Conn): void {
    conn.pingId = conn.pingId >= 0xffffffff ? 1 : conn.pingId + 1;
    conn.pingSentAt = Date.now();
    try {
      this.#send(conn, [{ id: conn.pingId, kind: Kind.PING }]);
    } catch {
      // The close event will follow.
    }
  }

  // Gives up on a connection from this side (dead link, bad frame, timeout)
  // without waiting for a close handshake that may never come.
  #abandon(conn: Conn, code: number, reason: string): void {
    if (conn.ended) return;
    const ws = conn.ws;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      // Node's ws: drop the socket now; a half-open peer never answers a close.
      const terminate = (ws as { terminate?: () => void }).terminate;
      if (typeof terminate === "function") {
        terminate.call(ws);
      } else {
        ws.close(code >= 3000 ? code : 1000, reason);
      }
    } catch {
      // Not open yet or already closing.
    }
    this.#onClose(conn, code === 1002 || code === 1003 || code === 1007 ? 1006 : code, reason);
  }

  #endConn(conn: Conn, err: ProtowsError): void {
    conn.ended = true;
    clearTimeout(conn.connectTimer);
    clearTimeout(conn.heartbeatTimer);
    clearTimeout(conn.refreshTimer);
    clearTimeout(conn.healthyTimer);
    const calls = [...conn.calls.values()];
    conn.calls.clear();
    for (const c of calls) c.onLost(err);
  }

  #onClose(conn: Conn, code: number, reason: string): void {
    if (conn.ended) return;
    const detail = conn.lastError !== undefined ? `${conn.lastError.code}: ${conn.lastError.rawMessage}` : reason;
    const lost = new ProtowsError("unavailable", `connection closed (${code}${detail === "" ? "" : ` ${detail}`})`);
    linkLost.add(lost);
    this.#endConn(conn, lost);
    if (this.#conn !== conn) return;
    this.#conn = undefined;
    if (this.#closed) return;

    switch (closeAction(code)) {
      case "stop":
        this.#stop(new ProtowsError(stopCode(code), `server closed the connection (${code}${reason === "" ? "" : ` ${reason}`})`), code, reason);
        return;
      case "token":
        void this.#afterRejectedToken(code, reason);
        return;
      case "now":
      case "refresh": // the next connection asks the token provider first
        // Reconnect at once, with jitter so that a server's clients do not
        // all come back in the same millisecond: neither 1001 nor an
        // expired token (4009) says anything about the server's health.
        this.#scheduleReconnect(Math.floor(Math.random() * this.#backoff.initialMs), code, reason);
        return;
      case "backoff":
        this.#scheduleReconnect(backoffDelay(this.#backoff, this.#attempt), code, reason);
        return;
      case "throttled":
        this.#scheduleReconnect(this.#backoff.initialMs + backoffDelay(this.#backoff, this.#attempt), code, reason);
        return;
    }
  }

  async #afterRejectedToken(code: number, reason: string): Promise<void> {
    const rejected = this.#lastToken;
    this.#rejectedToken = rejected;
    const unauth = new ProtowsError("unauthenticated", `server closed the connection (${code}${reason === "" ? "" : ` ${reason}`})`);
    if (this.#token === undefined) {
      this.#stop(unauth, code, reason);
      return;
    }
    let next: string;
    try {
      next = await this.#token();
    } catch (err) {
      this.#stop(new ProtowsError("unauthenticated", `token provider failed: ${String(err)}`), code, reason);
      return;
    }
    if (this.#closed) return;
    if (next === this.#rejectedToken) {
      // No new token: reconnecting would only be refused again.
      this.#stop(unauth, code, reason);
      return;
    }
    this.#pendingToken = next;
    this.#scheduleReconnect(backoffDelay(this.#backoff, this.#attempt), code, reason);
  }

  #scheduleReconnect(delayMs: number, code: number, reason: string): void {
    this.#attempt++;
    this.#setState({ state: "reconnecting", attempt: this.#attempt, delayMs, closeCode: code, closeReason: reason });
    this.#reconnectTimer = setTimeout(() => this.#connect(), delayMs);
  }

  #stop(err: ProtowsError, code: number, reason: string): void {
    this.#closed = true;
    this.#terminal = err;
    this.#failWaiters(err);
    this.#setState({ state: "closed", closeCode: code, closeReason: reason, error: err });
  }
}

function wireError(env: WireEnvelope): ProtowsError {
  const code = env.error?.code ?? 0;
  return new ProtowsError(code === 0 ? "unknown" : code, env.error?.message ?? "");
}

// seqSkips reports whether the room sequence number seq does not follow
// last, the previous non-zero seq of the same stream (docs/PROTOCOL.md
// section 3.5): it skips ahead or goes back. 0 on either side says nothing;
// an equal number is no gap (numbers stay at their maximum once reached).
function seqSkips(last: number, seq: number): boolean {
  return last !== 0 && seq !== 0 && seq !== last && seq !== last + 1;
}

// serverWentAway reports whether a stream's end means that the server, not
// the application, stopped it: `unavailable` (draining, restarting) or
// `canceled`. This client's own cancellations never get here (the stream's
// id is forgotten first, so the late STREAM_END is dropped), so `canceled`
// is the server cancelling its calls at shutdown (docs/PROTOCOL.md section 8).
function serverWentAway(err: ProtowsError): boolean {
  return err.code === "unavailable" || err.code === "canceled";
}

function isLinkLost(err: unknown): boolean {
  return err instanceof ProtowsError && linkLost.has(err);
}

// CallControl merges a caller's signal and a timeout into one signal whose
// reason is the ProtowsError the call fails with.
class CallControl {
  readonly #ac = new AbortController();
  readonly #user: AbortSignal | undefined;
  readonly #onUserAbort: () => void;
  readonly #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(user: AbortSignal | undefined, timeoutMs: number) {
    this.#user = user;
    this.#onUserAbort = () =>
      this.#ac.abort(new ProtowsError("canceled", "call canceled", { cause: user?.reason }));
    if (user?.aborted === true) {
      this.#onUserAbort();
    } else {
      user?.addEventListener("abort", this.#onUserAbort, { once: true });
    }
    if (timeoutMs > 0) {
      this.#timer = setTimeout(
        () => this.#ac.abort(new ProtowsError("deadline_exceeded", `no reply within ${timeoutMs} ms`)),
        timeoutMs,
      );
    }
  }

  get signal(): AbortSignal {
    return this.#ac.signal;
  }

  dispose(): void {
    clearTimeout(this.#timer);
    this.#user?.removeEventListener("abort", this.#onUserAbort);
  }
}

type StreamItem =
  | { kind: "message"; payload: unknown; seq: number }
  | { kind: "end"; error?: ProtowsError }
  | { kind: "lost"; error: ProtowsError };

// Subscription is one stream's REQUEST on one connection: a queue of what
// arrived for its id.
class Subscription {
  readonly id: number;
  readonly #conn: Conn;
  readonly #signal: AbortSignal;
  readonly #cancel: (conn: Conn, id: number) => void;
  readonly #queue: StreamItem[] = [];
  #wake: (() => void) | undefined;
  #done = false;

  constructor(conn: Conn, id: number, signal: AbortSignal, cancel: (conn: Conn, id: number) => void) {
    this.#conn = conn;
    this.id = id;
    this.#signal = signal;
    this.#cancel = cancel;
    conn.calls.set(id, {
      onEnvelope: (env) => {
        switch (env.kind) {
          case Kind.STREAM_MESSAGE:
            this.#push({ kind: "message", payload: env.payload, seq: env.seq ?? 0 });
            return;
          case Kind.STREAM_END:
            this.#finish({ kind: "end", error: env.error === undefined ? undefined : wireError(env) });
            return;
          case Kind.ERROR:
            this.#finish({ kind: "end", error: wireError(env) });
            return;
          default:
            this.#finish({ kind: "end", error: new ProtowsError("internal", `unexpected ${Kind[env.kind]} for a stream`) });
        }
      },
      onLost: (err) => this.#finish({ kind: "lost", error: err }),
    });
  }

  #push(item: StreamItem): void {
    this.#queue.push(item);
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #finish(item: StreamItem): void {
    this.#done = true;
    this.#conn.calls.delete(this.id);
    this.#push(item);
  }

  async next(): Promise<StreamItem> {
    for (;;) {
      const item = this.#queue.shift();
      if (item !== undefined) {
        return item;
      }
      if (this.#signal.aborted) {
        throw this.#signal.reason;
      }
      await new Promise<void>((resolve) => {
        const onAbort = (): void => resolve();
        this.#signal.addEventListener("abort", onAbort, { once: true });
        this.#wake = () => {
          this.#signal.removeEventListener("abort", onAbort);
          resolve();
        };
      });
    }
  }

  // Sends CANCEL when the stream is still open on the server.
  dispose(): void {
    if (!this.#done) {
      this.#done = true;
      this.#conn.calls.delete(this.id);
      this.#cancel(this.#conn, this.id);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
