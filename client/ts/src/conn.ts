// The connection and its heartbeat: one WebSocket, the calls in flight on
// it, the dispatch of what arrives (docs/PROTOCOL.md sections 3 and 7), the
// application PING/PONG, and giving up on a link that went quiet. A Conn
// lives for one WebSocket; the client opens a new one on every reconnect.

import { CloseCode } from "./closecode.js";
import type { Codec, WireEnvelope } from "./codec.js";
import { connectionLost, wireError, type ProtowsError } from "./error.js";
import { Kind } from "./gen/protows/v1/protows_pb.js";

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
  /** 1 while open; 2 closing, 3 closed. Absent: taken as open. */
  readonly readyState?: number;
  send(data: string | ArrayBufferView | ArrayBufferLike): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor, such as `globalThis.WebSocket` or `ws`'s WebSocket. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Heartbeat settings (application PING/PONG, docs/PROTOCOL.md section 7). */
export interface HeartbeatOptions {
  /** Send a PING after this long without receiving anything, in ms. Default 15000. */
  idleMs?: number;
  /** Declare the link dead when the PONG has not come after this long, in ms. Default 10000. */
  timeoutMs?: number;
}

// What a call in flight on a connection is told: the envelopes for its id,
// or that the connection ended first.
export interface CallHandler {
  onEnvelope(env: WireEnvelope): void;
  onLost(err: ProtowsError): void;
}

// What a connection tells its owner.
export interface ConnEvents {
  // The socket opened with the codec's subprotocol; the heartbeat runs.
  opened(conn: Conn): void;
  // The connection ended: closed by the server or the network (code, reason
  // as received, 1006 when it dropped), or abandoned by this side. Its
  // calls have been told with the error of a lost connection.
  closed(conn: Conn, code: number, reason: string): void;
  // A PONG answered this connection's PING after rttMs.
  pong(rttMs: number): void;
}

// How connections are opened, the same for every one of a client.
export interface ConnConfig {
  readonly url: string;
  readonly codec: Codec;
  readonly WebSocket: WebSocketConstructor;
  readonly heartbeat: Required<HeartbeatOptions> | undefined;
  // How long the socket may take to open and the handshake to finish.
  readonly connectTimeoutMs: number;
  // Shared by a client's connections, so that ids do not repeat soon.
  readonly ids: CallIds;
}

// CallIds hands out request ids: 1 to 2^32-1, wrapping, skipping the ids
// of calls still in flight on the connection.
export class CallIds {
  #next = 1;

  take(inUse: ReadonlyMap<number, unknown>): number {
    for (;;) {
      const id = this.#next;
      this.#next = id >= 0xffffffff ? 1 : id + 1;
      if (!inUse.has(id)) {
        return id;
      }
    }
  }
}

// wsOpen is WebSocket.OPEN, the readyState of an open socket.
const wsOpen = 1;

// Conn is one WebSocket and what belongs to it.
export class Conn {
  readonly ws: WebSocketLike;
  // The calls in flight, by request id.
  readonly calls = new Map<number, CallHandler>();
  // The handshake finished: calls may use the connection.
  #ready = false;
  // The WebSocket opened (the HTTP upgrade succeeded).
  #opened = false;
  // What the WebSocket's error event said, if anything.
  #error: Error | undefined;
  #ended = false;
  #closeCode: number = CloseCode.Abnormal;
  #closeReason = "";
  #lastReceived = Date.now();
  #pingId = 0;
  #pingSentAt = 0;
  #lastError: ProtowsError | undefined; // ERROR with id 0, reported just before a close
  readonly #timers = new Map<string, ReturnType<typeof setTimeout>>();
  readonly #config: ConnConfig;
  readonly #events: ConnEvents;

  // Opens a WebSocket; it throws what the WebSocket constructor throws (a
  // malformed URL, say). The events come later, never from within.
  constructor(config: ConnConfig, events: ConnEvents) {
    this.#config = config;
    this.#events = events;
    const ws = new config.WebSocket(config.url, [config.codec.subprotocol]);
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    this.timer("connect", () => this.abandon(4000, `not ready within ${config.connectTimeoutMs} ms`), config.connectTimeoutMs);
    ws.onopen = () => this.#onOpen();
    ws.onmessage = (ev: { data: unknown }) => this.#onMessage(ev.data);
    ws.onclose = (ev: { code?: number; reason?: string }) => this.#onClose(ev.code ?? CloseCode.Abnormal, ev.reason ?? "");
    ws.onerror = (ev: { error?: unknown; message?: unknown }) => {
      // A close event follows. A browser says nothing more; Node's ws
      // says why ("connect ECONNREFUSED ...", "Unexpected server
      // response: 404"), and so may other WebSockets.
      this.#error ??=
        ev?.error instanceof Error ? ev.error : typeof ev?.message === "string" && ev.message !== "" ? new Error(ev.message) : undefined;
    };
  }

  // Whether the WebSocket opened: false when the attempt failed in the
  // handshake (refused, wrong path, timed out).
  get opened(): boolean {
    return this.#opened;
  }

  // What the WebSocket's error event said went wrong, if anything.
  get error(): Error | undefined {
    return this.#error;
  }

  // Whether calls may use the connection: the handshake finished.
  get ready(): boolean {
    return this.#ready;
  }

  // Whether the connection ended; nothing more happens on it then.
  get ended(): boolean {
    return this.#ended;
  }

  // The close code and reason it ended with (1006 and "" until it ends).
  get closeCode(): number {
    return this.#closeCode;
  }

  get closeReason(): string {
    return this.#closeReason;
  }

  // Whether a PING is waiting for its PONG.
  get pinging(): boolean {
    return this.#pingSentAt !== 0;
  }

  // markReady ends the handshake: the connect timeout stops and calls may
  // use the connection.
  markReady(): void {
    this.clearTimer("connect");
    this.#ready = true;
  }

  // allocId returns an id no call in flight on the connection has.
  allocId(): number {
    return this.#config.ids.take(this.calls);
  }

  // send writes one frame with the envelopes; it throws when the socket
  // does. A socket that is closing or closed takes nothing: a browser's
  // drops the frame and only says so on the console, Node's ws throws.
  // Both come to the same here, a frame that is not sent: the close event
  // that follows tells every call on the connection that it was lost, as
  // when a sent frame is lost with the link, and each call does what it
  // does then (an outbox entry goes on the next connection, a stream
  // re-opens, an idempotent call is sent again).
  send(envs: WireEnvelope[]): void {
    const state = this.ws.readyState;
    if (state !== undefined && state !== wsOpen) {
      return;
    }
    this.ws.send(this.#config.codec.encodeFrame(envs));
  }

  // sendCancel tells the server that the call id is no longer wanted.
  sendCancel(id: number): void {
    if (this.#ended) {
      return;
    }
    try {
      this.send([{ id, kind: Kind.CANCEL }]);
    } catch {
      // The connection is going; the server cancels its calls anyway.
    }
  }

  // ping sends a PING, unless one is waiting for its PONG.
  ping(): void {
    if (this.#pingSentAt === 0) {
      this.#sendPing();
    }
  }

  // timer runs fn after ms unless the connection ends first; a timer of
  // the same name is replaced.
  timer(name: string, fn: () => void, ms: number): void {
    this.clearTimer(name);
    this.#timers.set(name, setTimeout(fn, ms));
  }

  clearTimer(name: string): void {
    clearTimeout(this.#timers.get(name));
    this.#timers.delete(name);
  }

  // end finishes the connection without telling the owner (which ends it):
  // its timers stop and its calls fail with err. The socket is left alone.
  end(err: ProtowsError): void {
    this.#ended = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    const calls = [...this.calls.values()];
    this.calls.clear();
    for (const c of calls) c.onLost(err);
  }

  // abandon gives up on the connection from this side (dead link, bad
  // frame, timeout) without waiting for a close handshake that may never
  // come, and reports it closed with code.
  abandon(code: number, reason: string): void {
    if (this.#ended) return;
    const ws = this.ws;
    ws.onopen = ws.onmessage = ws.onclose = null;
    // Node's ws emits "error" when a socket still connecting is terminated,
    // and an error event without a listener would crash the process.
    ws.onerror = () => {};
    try {
      // Node's ws: drop the socket now; a half-open peer never answers a close.
      const terminate = (ws as { terminate?: () => void }).terminate;
      if (typeof terminate === "function") {
        terminate.call(ws);
      } else {
        ws.close(code >= 3000 ? code : CloseCode.Normal, reason);
      }
    } catch {
      // Not open yet or already closing.
    }
    // The codes that would mean "this client broke the protocol" if the
    // server sent them (and make the client stop) are reported as a drop:
    // here the server broke it, and a new connection may do better.
    const reported =
      code === CloseCode.ProtocolError || code === CloseCode.UnsupportedData || code === CloseCode.InvalidPayload
        ? CloseCode.Abnormal
        : code;
    this.#onClose(reported, reason);
  }

  #onOpen(): void {
    if (this.#ended) return;
    this.#opened = true;
    const want = this.#config.codec.subprotocol;
    if (this.ws.protocol !== want) {
      this.abandon(CloseCode.ProtocolError, `server chose subprotocol "${this.ws.protocol}"`);
      return;
    }
    this.#startHeartbeat();
    this.#events.opened(this);
  }

  #onClose(code: number, reason: string): void {
    if (this.#ended) return;
    this.#closeCode = code;
    this.#closeReason = reason;
    const last = this.#lastError;
    this.end(connectionLost(code, last !== undefined ? `${last.code}: ${last.rawMessage}` : reason));
    this.#events.closed(this, code, reason);
  }

  #onMessage(data: unknown): void {
    if (this.#ended) return;
    this.#lastReceived = Date.now();
    const codec = this.#config.codec;
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
      envs = codec.decodeFrame(frame);
    } catch {
      this.abandon(typeof data === "string" && codec.binary ? CloseCode.UnsupportedData : CloseCode.InvalidPayload, "undecodable frame");
      return;
    }
    for (const env of envs) {
      switch (env.kind) {
        case Kind.REPLY:
        case Kind.STREAM_MESSAGE:
        case Kind.STREAM_END:
        case Kind.STREAM_POSITION:
        case Kind.ERROR:
        case Kind.CREDIT:
          if (env.kind === Kind.ERROR && env.id === 0) {
            this.#lastError = wireError(env);
            break;
          }
          // Envelopes for calls no longer in flight (cancelled) are dropped.
          this.calls.get(env.id)?.onEnvelope(env);
          break;
        case Kind.PING:
          try {
            this.send([{ id: env.id, kind: Kind.PONG }]);
          } catch {
            // The close event will follow.
          }
          break;
        case Kind.PONG:
          if (this.#pingSentAt !== 0 && env.id === this.#pingId) {
            const rtt = Date.now() - this.#pingSentAt;
            this.#pingSentAt = 0;
            this.#events.pong(rtt);
          }
          break;
        default:
          // REQUEST or CANCEL from a server, or a kind from the future:
          // nothing this client can act on.
          break;
      }
      if (this.#ended) return;
    }
  }

  // The heartbeat sends a PING after idleMs without receiving anything and
  // abandons the connection (4002) when its PONG has not come after
  // timeoutMs: the only way to notice a half-open link.
  #startHeartbeat(): void {
    const hb = this.#config.heartbeat;
    if (hb === undefined) return;
    const check = (): void => {
      if (this.#ended) return;
      const now = Date.now();
      if (this.#pingSentAt !== 0) {
        const waited = now - this.#pingSentAt;
        if (waited >= hb.timeoutMs) {
          this.abandon(CloseCode.HeartbeatTimeout, "heartbeat timeout");
          return;
        }
        this.timer("heartbeat", check, hb.timeoutMs - waited);
        return;
      }
      const idle = now - this.#lastReceived;
      if (idle >= hb.idleMs) {
        this.#sendPing();
        this.timer("heartbeat", check, hb.timeoutMs);
        return;
      }
      this.timer("heartbeat", check, hb.idleMs - idle);
    };
    this.timer("heartbeat", check, hb.idleMs);
  }

  #sendPing(): void {
    this.#pingId = this.#pingId >= 0xffffffff ? 1 : this.#pingId + 1;
    this.#pingSentAt = Date.now();
    try {
      this.send([{ id: this.#pingId, kind: Kind.PING }]);
    } catch {
      // The close event will follow.
    }
  }
}
