// Calls and streams: a REQUEST and its REPLY or ERROR, a REQUEST and its
// STREAM_MESSAGEs up to the STREAM_END, CANCEL on abort, timeout or break
// (docs/PROTOCOL.md sections 3 and 4), and what happens to them when the
// connection ends: idempotent calls are sent again, streams re-opened.

import {
  create,
  type DescMessage,
  type DescMethod,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { backoffDelay, type Backoff } from "./backoff.js";
import type { Codec, WireEnvelope, WirePosition } from "./codec.js";
import type { Conn } from "./conn.js";
import { connectionLost, isConnectionLost, ProtowsError, wireError, withMethod } from "./error.js";
import { Kind, Recovery } from "./gen/protows/v1/protows_pb.js";
import { chain, type CallFn, type Interceptor, type StreamRequest, type StreamResponse, type UnaryRequest, type UnaryResponse } from "./interceptor.js";
import { methodId, methodName } from "./method.js";
import { FlowCall, Granter, streamWindow } from "./flow.js";
import type { Outbox } from "./outbox.js";

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
   * Generated clients and createClient set it for methods whose
   * `idempotency_level` is `NO_SIDE_EFFECTS` or `IDEMPOTENT`; false here
   * turns that off for one call.
   */
  idempotent?: boolean;
  /**
   * Unary calls: call with an exactly-once effect (docs/PROTOCOL.md,
   * section 3.7). The call gets a random idempotency key and waits in the
   * client's outbox until it is answered or its timeout passes: it is sent
   * when the client is connected, and sent again, with the same key, on
   * the next connection whenever the connection drops before the answer;
   * such calls are sent in the order they were made. The server runs the
   * handler once per key and answers every send with that run's outcome.
   * Without a timeout the call waits as long as the client lives. With
   * ClientOptions.outboxStorage the call outlives the client too.
   */
  exactlyOnce?: boolean;
  /**
   * Unary calls: exactlyOnce with this key instead of a random one, for an
   * application that keeps the key itself. 1 to 128 printable ASCII
   * characters, fresh for each logical call: the server refuses
   * (`failed_precondition`) a key it knows with another request.
   */
  idempotencyKey?: string;
  /**
   * Streams: after the connection dropped, or after the server ended the
   * stream with `unavailable` (it is draining or restarting) or with a
   * `canceled` this client did not ask for (the server cancels its calls at
   * shutdown), send the request again once connected and go on with the new
   * stream's messages; the first of them has `gap: true` (see
   * onMessageInfo). Default true; false ends the stream with the error
   * instead (`unavailable` after a dropped connection).
   *
   * A stream of a room with history (docs/PROTOCOL.md section 14) is
   * re-opened from its position (the room's epoch and the last offset
   * received): the server replays what was missed, and the first message
   * of the re-opened stream has `gap: false` when everything was
   * recovered. onRecovery tells the outcome.
   */
  resubscribe?: boolean;
  /**
   * Streams: on a room with history, start with the room's latest
   * `history` messages (sent as the REQUEST's `resume.history`,
   * docs/PROTOCOL.md section 14): on the first opening, and on a re-open
   * that could not resume (the missed messages are gone), so that the
   * application can start again from them. The server replays at most its
   * history's bound; other streams ignore it. Default 0.
   */
  history?: number;
  /**
   * Streams: called with each position the server tells for a stream of a
   * room with history (STREAM_POSITION, docs/PROTOCOL.md section 14): when
   * the stream opens and after each re-open, with the outcome: a fresh
   * start, everything missed `recovered` (with the count), or an
   * unrecoverable gap (`lost`). It is called synchronously from the
   * iteration, in order with the messages: after the messages before the
   * position were yielded, before the messages after it. Streams of rooms
   * without history and servers that predate section 14 never call it;
   * their re-opens are gaps (onMessageInfo). An exception it throws ends the
   * stream, as onMessageInfo's does.
   */
  onRecovery?: (info: StreamRecovery) => void;
  /** Request metadata (string keys and values, keys in lower case). */
  metadata?: Record<string, string>;
  /**
   * Streams: called with the room sequence number and the gap flag of each
   * message (StreamMessageInfo), synchronously, just before the iteration
   * yields that message, so the call always describes the message the loop
   * body receives next. An exception it throws ends the stream (the
   * iteration throws it, and a CANCEL goes to the server). It is called
   * as messages come from the server, inside the client's interceptors:
   * one that drops or adds messages breaks that pairing.
   */
  onMessageInfo?: (info: StreamMessageInfo) => void;
  /**
   * Unary calls: called with the REPLY's metadata (docs/PROTOCOL.md section
   * 3.4; an empty object when the server set none) just before the call
   * resolves with the response. With `idempotent`, only the reply that
   * resolves the call is reported; with interceptors, the metadata of the
   * response they return (UnaryResponse.metadata).
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
   * re-opened (resubscribe) before it, unless the server recovered every
   * missed message (a room with history, see onRecovery: there the re-open's
   * gap goes to the first message after the new position, or to the first
   * room message if no position comes, never to a seq-0 message before
   * them), or its seq does not follow the
   * previous non-zero seq of the stream (it skips ahead, say 7 after 5,
   * because the server could not deliver some room messages, or goes back
   * because the numbering restarted). A seq of 0 neither starts nor hides
   * a gap. On a gap, applications that must not miss messages resync: they
   * reload the state or ask for what came after the last message they have.
   */
  readonly gap: boolean;
}

/**
 * What became of the opening or re-opening of a stream of a room with
 * history (docs/PROTOCOL.md section 14.3): the same as Go's
 * `client.StreamPosition`.
 */
export interface StreamRecovery {
  /**
   * The outcome: `fresh`, the stream had no position to resume from (its
   * first opening; the `history` asked for follows); `recovered`, nothing
   * was lost, the `replayed` missed messages follow; `epoch_changed`
   * (the room's history was lost: a server that kept it in memory
   * restarted), `too_old` (the missed messages already left the history)
   * or `unavailable` (the history could not be read): an unrecoverable
   * gap; `unknown`, an outcome newer than this runtime, counted as a gap.
   */
  readonly recovery: "fresh" | "recovered" | "epoch_changed" | "too_old" | "unavailable" | "unknown";
  /** True when messages may be missing: every outcome but fresh and recovered. */
  readonly lost: boolean;
  /** How many of the messages that follow are replayed from the history (latest - offset). */
  readonly replayed: number;
  /** The room's epoch. */
  readonly epoch: string;
  /** The offset of the last room message before those that follow: the next has seq offset + 1. */
  readonly offset: number;
}

/** Options of a server stream: the CallOptions that apply to streams. */
export type StreamOptions = Pick<
  CallOptions,
  "signal" | "resubscribe" | "metadata" | "onMessageInfo" | "history" | "onRecovery"
>;

const recoveryNames = ["fresh", "recovered", "epoch_changed", "too_old", "unavailable"] as const;

/**
 * Options of a client-streaming or bidirectional call. `timeoutMs` bounds
 * the whole call (including the wait for a connection) and has no default:
 * such calls last as long as their messages take. Neither kind is resumed
 * after a reconnect: a dropped connection ends the call with `unavailable`.
 */
export type ClientStreamOptions = Pick<CallOptions, "signal" | "timeoutMs" | "metadata">;

/**
 * The client's end of a bidirectional call: `send` and `closeSend` for the
 * client's messages, async iteration for the server's. Iterate it once;
 * the iteration ends at the server's clean end of the call and throws the
 * ProtowsError the call failed with. Breaking out of the loop, `close`,
 * the signal and the timeout cancel the call (CANCEL to the server).
 */
export interface BidiStream<I extends DescMessage, O extends DescMessage> extends AsyncIterable<MessageShape<O>> {
  /**
   * send sends one message, waiting while the server has granted no credit
   * for it (the call is not open yet, or its handler has not read the
   * earlier ones). It rejects with the call's error when the call ended
   * before the message went out (`failed_precondition` after a clean end or
   * closeSend).
   */
  send(request: MessageInitShape<I>): Promise<void>;
  /** closeSend tells the server that the client sends no more messages (half-close). */
  closeSend(): Promise<void>;
  /** close cancels the call, if it has not ended. */
  close(): void;
}

const maxIdempotentRetries = 3;

// Calls makes the calls of one client: it runs them through the
// interceptors, waits for a ready connection (which the client provides),
// sends, and sorts out what comes back. Every ProtowsError a call fails
// with names its method.
export class Calls {
  readonly #codec: Codec;
  readonly #backoff: Backoff;
  readonly #requestTimeoutMs: number;
  readonly #waitConnected: (signal: AbortSignal) => Promise<Conn>;
  readonly #interceptors: readonly Interceptor[];
  readonly #outbox: Outbox | undefined;

  constructor(
    codec: Codec,
    backoff: Backoff,
    requestTimeoutMs: number,
    waitConnected: (signal: AbortSignal) => Promise<Conn>,
    interceptors: readonly Interceptor[],
    outbox?: Outbox,
  ) {
    this.#codec = codec;
    this.#backoff = backoff;
    this.#requestTimeoutMs = requestTimeoutMs;
    this.#waitConnected = waitConnected;
    this.#interceptors = [...interceptors];
    this.#outbox = outbox;
  }

  // unary makes a unary call through the interceptors.
  async unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    request: MessageInitShape<I>,
    options: CallOptions,
  ): Promise<MessageShape<O>> {
    const name = methodName(method);
    const ctl = new CallControl(options.signal, options.timeoutMs ?? this.#requestTimeoutMs);
    try {
      const req: UnaryRequest = {
        stream: false,
        method: method as DescMethodUnary,
        methodName: name,
        message: create(method.input, request),
        metadata: { ...options.metadata },
        signal: ctl.signal,
      };
      const idempotent = options.idempotent === true;
      const once = options.exactlyOnce === true || options.idempotencyKey !== undefined;
      const res = await chain(this.#interceptors, (r) => (once ? this.#once(r, options.idempotencyKey, ctl) : this.#unary(r, idempotent, ctl)))(req);
      if (res.stream) {
        throw mixedUp();
      }
      options.onReplyMetadata?.(res.metadata);
      return res.message as MessageShape<O>;
    } catch (err) {
      throw withMethod(err, name);
    } finally {
      ctl.dispose();
    }
  }

  // #unary is the end of a unary call's interceptor chain: the call, on
  // every connection it gets, until it has a reply, an error, or (not
  // idempotent, or out of retries) loses its connection. (A request an
  // interceptor turned into a stream's fails when the server's answer is
  // not a REPLY.)
  async #unary(r: UnaryRequest | StreamRequest, idempotent: boolean, ctl: CallControl): Promise<UnaryResponse> {
    try {
      const env = this.envelope(r.method, r.message, r.metadata);
      for (let attempt = 0; ; attempt++) {
        const conn = await this.#waitConnected(r.signal);
        try {
          // The server learns the time left (docs/PROTOCOL.md, section
          // 3.8) and ends the call with deadline_exceeded when it passes.
          const reply = await exchangeUnary(conn, withTimeout(env, ctl.leftMs()), r.signal);
          const message = this.#codec.decodePayload(r.method.output, reply.payload) as MessageShape<DescMessage>;
          return { stream: false, method: r.method as DescMethodUnary, methodName: r.methodName, message, metadata: { ...reply.metadata } };
        } catch (err) {
          if (idempotent && attempt < maxIdempotentRetries && isConnectionLost(err)) {
            continue;
          }
          throw err;
        }
      }
    } catch (err) {
      throw withMethod(err, r.methodName);
    }
  }

  // #once is the end of an exactly-once call's interceptor chain: the
  // call goes through the outbox (outbox.ts), which sends it, and again
  // after drops, with its idempotency key until it is answered or its
  // signal ends it.
  async #once(r: UnaryRequest | StreamRequest, key: string | undefined, ctl: CallControl): Promise<UnaryResponse> {
    try {
      if (this.#outbox === undefined) throw new ProtowsError("internal", "no outbox");
      const reply = await this.#outbox.call(r, key, ctl.leftMs());
      const message = this.#codec.decodePayload(r.method.output, reply.payload) as MessageShape<DescMessage>;
      return { stream: false, method: r.method as DescMethodUnary, methodName: r.methodName, message, metadata: { ...reply.metadata } };
    } catch (err) {
      throw withMethod(err, r.methodName);
    }
  }

  // exchange sends a unary REQUEST on conn, ready or not (the handshake's
  // Authenticate goes before it is), and decodes the REPLY, within
  // timeoutMs.
  async exchange<I extends DescMessage, O extends DescMessage>(
    conn: Conn,
    method: DescMethodUnary<I, O>,
    request: MessageInitShape<I>,
    timeoutMs: number,
  ): Promise<MessageShape<O>> {
    const req = this.envelope(method, create(method.input, request), undefined);
    const ctl = new CallControl(undefined, timeoutMs);
    try {
      const env = await exchangeUnary(conn, req, ctl.signal);
      return this.#codec.decodePayload(method.output, env.payload) as MessageShape<O>;
    } finally {
      ctl.dispose();
    }
  }

  // stream makes a server-streaming call through the interceptors, when
  // the iteration starts.
  async *stream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodServerStreaming<I, O>,
    request: MessageInitShape<I>,
    options: StreamOptions,
  ): AsyncGenerator<MessageShape<O>> {
    const name = methodName(method);
    const ctl = new CallControl(options.signal, 0);
    try {
      const req: StreamRequest = {
        stream: true,
        method: method as DescMethodServerStreaming,
        methodName: name,
        message: create(method.input, request),
        metadata: { ...options.metadata },
        signal: ctl.signal,
      };
      const inner: CallFn = (r) =>
        Promise.resolve<StreamResponse>({
          stream: true,
          method: r.method as DescMethodServerStreaming,
          methodName: r.methodName,
          message: this.#stream(r, options),
        });
      const res = await chain(this.#interceptors, inner)(req);
      if (!res.stream) {
        throw mixedUp();
      }
      yield* res.message as AsyncIterable<MessageShape<O>>;
    } catch (err) {
      throw withMethod(err, name);
    } finally {
      ctl.dispose();
    }
  }

  // #stream is the end of a stream's interceptor chain: the stream's
  // messages, re-opened when its connection ends or the server goes away
  // (options.resubscribe).
  async *#stream(r: UnaryRequest | StreamRequest, options: StreamOptions): AsyncGenerator<MessageShape<DescMessage>> {
    const resubscribe = options.resubscribe ?? true;
    const signal = r.signal;
    try {
      const method = r.method;
      const req = this.envelope(method, r.message, r.metadata);
      let unavailableAttempt = 0;
      // A uint32 on the wire; what is not a positive number asks for none.
      const h = options.history ?? 0;
      const history = h > 0 ? Math.min(Math.trunc(h), 0xffffffff) : 0;
      // The gap state, as in the Go client's streamCore: gapPending after a
      // re-open, lastSeq the last non-zero seq since the stream was opened,
      // or since its position. The room position (docs/PROTOCOL.md section
      // 14): epoch, "" when the stream has none, with lastSeq its offset;
      // positioned, a STREAM_POSITION came since the stream was (re-)opened.
      let gapPending = false;
      let lastSeq = 0;
      let epoch = "";
      let positioned = false;
      const reopening = (): void => {
        gapPending = true;
        if (epoch === "") lastSeq = 0;
      };
      for (;;) {
        const conn = await this.#waitConnected(signal);
        if (conn.ended) continue; // ended between the wait and now: wait for the next
        const sub = new Subscription(conn, conn.allocId(), signal);
        positioned = false;
        try {
          // Every stream says it understands STREAM_POSITION: the client
          // cannot know which streams are rooms with history.
          conn.send([
            { ...req, id: sub.id, credit: streamWindow, resume: { epoch, offset: epoch === "" ? 0 : lastSeq, history } },
          ]);
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
                const msg = this.#codec.decodePayload(method.output, item.payload) as MessageShape<DescMessage>;
                const seq = item.seq;
                // A stream re-opened from a position waits for the new
                // position (or a room message) to tell whether the re-open
                // lost anything: messages outside the room's history
                // (seq 0: presence, say) may come before it.
                const waiting = gapPending && epoch !== "" && !positioned && seq === 0;
                const gap = (gapPending && !waiting) || seqSkips(lastSeq, seq);
                if (!waiting) gapPending = false;
                if (seq !== 0) {
                  lastSeq = seq;
                  // Room messages without a position: a room without
                  // history, or a server that predates them.
                  if (!positioned) epoch = "";
                }
                options.onMessageInfo?.({ seq, gap });
                yield msg;
                break;
              }
              case "position": {
                const p = item.position;
                const recovery = recoveryNames[p.recovery] ?? "unknown";
                const lost = p.recovery !== Recovery.UNSPECIFIED && p.recovery !== Recovery.RECOVERED;
                epoch = p.epoch;
                lastSeq = p.offset;
                positioned = true;
                if (recovery === "recovered") gapPending = false;
                if (lost) gapPending = true;
                options.onRecovery?.({
                  recovery,
                  lost,
                  replayed: Math.max(p.latest - p.offset, 0),
                  epoch: p.epoch,
                  offset: p.offset,
                });
                break;
              }
              case "end":
                if (item.error === undefined) {
                  return;
                }
                if (resubscribe && serverWentAway(item.error)) {
                  // The server is draining or restarting: try again, with
                  // backoff, on this connection or the next, from the
                  // stream's position if it has one.
                  reopening();
                  await sleep(backoffDelay(this.#backoff, unavailableAttempt++), signal);
                  resend = true;
                  break;
                }
                throw item.error;
              case "lost":
                if (!resubscribe) {
                  throw item.error;
                }
                reopening();
                resend = true;
                break;
            }
          }
        } finally {
          sub.dispose();
        }
      }
    } catch (err) {
      throw withMethod(err, r.methodName);
    }
  }

  // clientStream makes a client-streaming call: it sends the requests as
  // they come (within the server's credit), half-closes, and resolves with
  // the REPLY. It stops taking requests when the call ends early.
  async clientStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethod & { input: I; output: O },
    requests: AsyncIterable<MessageInitShape<I>> | Iterable<MessageInitShape<I>>,
    options: ClientStreamOptions,
  ): Promise<MessageShape<O>> {
    const ctl = new CallControl(options.signal, options.timeoutMs ?? 0);
    try {
      const req = this.envelope(method, create(method.input as DescMessage), options.metadata);
      const conn = await this.#waitConnected(ctl.signal);
      if (conn.ended) throw connectionLost(conn.closeCode, conn.closeReason);
      const call = new FlowCall(conn, req, false, ctl.signal);
      const it =
        Symbol.asyncIterator in requests
          ? (requests as AsyncIterable<MessageInitShape<I>>)[Symbol.asyncIterator]()
          : (requests as Iterable<MessageInitShape<I>>)[Symbol.iterator]();
      const ended = call.done.then(() => undefined);
      try {
        for (;;) {
          const n = await Promise.race([Promise.resolve(it.next()), ended]);
          if (n === undefined) {
            // The call ended while the application produced its next request.
            void Promise.resolve(it.return?.()).catch(() => {});
            break;
          }
          if (n.done === true) break;
          const payload = this.#codec.encodePayload(method.input as DescMessage, create(method.input as DescMessage, n.value as MessageInitShape<DescMessage>));
          try {
            await call.send(payload);
          } catch (err) {
            void Promise.resolve(it.return?.()).catch(() => {});
            if (call.ended && !ctl.signal.aborted) break; // the outcome says why
            throw err;
          }
        }
        await call.closeSend();
        const env = await call.result();
        return this.#codec.decodePayload(method.output, env.payload) as MessageShape<O>;
      } catch (err) {
        // The requests failed (or did not encode): the call is abandoned.
        call.cancel(err instanceof ProtowsError ? err : new ProtowsError("canceled", "requests failed", { cause: err }));
        throw err;
      }
    } catch (err) {
      throw withMethod(err, methodName(method));
    } finally {
      ctl.dispose();
    }
  }

  // bidi opens a bidirectional call in the background and returns its
  // handle at once; send waits for the call to open.
  bidi<I extends DescMessage, O extends DescMessage>(
    method: DescMethod & { input: I; output: O },
    options: ClientStreamOptions,
  ): BidiStream<I, O> {
    const ctl = new CallControl(options.signal, options.timeoutMs ?? 0);
    const opened = (async () => {
      const req = this.envelope(method, create(method.input as DescMessage), options.metadata);
      const conn = await this.#waitConnected(ctl.signal);
      if (conn.ended) throw connectionLost(conn.closeCode, conn.closeReason);
      const call = new FlowCall(conn, req, true, ctl.signal);
      void call.done.then(() => ctl.dispose());
      return call;
    })();
    opened.catch(() => ctl.dispose()); // reported by send and the iteration
    const codec = this.#codec;
    const name = methodName(method);
    async function* receive(): AsyncGenerator<MessageShape<O>> {
      let call: FlowCall | undefined;
      try {
        call = await opened;
        for (;;) {
          const m = await call.next();
          if (m === undefined) return;
          yield codec.decodePayload(method.output, m.payload) as MessageShape<O>;
        }
      } catch (err) {
        throw withMethod(err, name);
      } finally {
        call?.cancel(new ProtowsError("canceled", "stream no longer read"));
      }
    }
    let iterated = false;
    return {
      async send(request: MessageInitShape<I>): Promise<void> {
        try {
          const call = await opened;
          await call.send(codec.encodePayload(method.input as DescMessage, create(method.input as DescMessage, request as MessageInitShape<DescMessage>)));
        } catch (err) {
          throw withMethod(err, name);
        }
      },
      async closeSend(): Promise<void> {
        try {
          await (await opened).closeSend();
        } catch (err) {
          throw withMethod(err, name);
        }
      },
      close(): void {
        opened.then((call) => call.cancel(new ProtowsError("canceled", "call closed")), () => {});
        ctl.dispose();
      },
      [Symbol.asyncIterator](): AsyncIterator<MessageShape<O>> {
        if (iterated) throw new TypeError("protows: a bidirectional stream can be iterated once");
        iterated = true;
        return receive();
      },
    };
  }

  // envelope makes the REQUEST envelope of a call, without its id; the
  // codec says whether the method goes by id or by name.
  envelope(method: DescMethod, msg: MessageShape<DescMessage>, metadata: Record<string, string> | undefined): WireEnvelope {
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
}

// exchangeUnary sends a REQUEST on conn and resolves with its REPLY.
function exchangeUnary(conn: Conn, req: WireEnvelope, signal: AbortSignal): Promise<WireEnvelope> {
  return new Promise<WireEnvelope>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    if (conn.ended) {
      // The connection ended between the wait for it and now.
      reject(connectionLost(conn.closeCode, conn.closeReason));
      return;
    }
    const id = conn.allocId();
    const onAbort = (): void => {
      if (conn.calls.delete(id)) {
        conn.sendCancel(id);
      }
      reject(signal.reason);
    };
    const finish = (): void => {
      conn.calls.delete(id);
      signal.removeEventListener("abort", onAbort);
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
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      conn.send([{ ...req, id }]);
    } catch (err) {
      finish();
      reject(new ProtowsError("unavailable", "send failed", { cause: err }));
    }
  });
}

// mixedUp is the error of a call whose interceptor answered a unary call
// with a stream, or a stream with a unary response.
function mixedUp(): ProtowsError {
  return new ProtowsError("internal", "an interceptor mixed up a unary call and a stream");
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

// withTimeout returns req with timeoutMs set to leftMs, when there is a
// deadline.
function withTimeout(req: WireEnvelope, leftMs: number | undefined): WireEnvelope {
  return leftMs === undefined ? req : { ...req, timeoutMs: leftMs };
}

// CallControl merges a caller's signal and a timeout into one signal whose
// reason is the ProtowsError the call fails with.
export class CallControl {
  readonly #ac = new AbortController();
  readonly #user: AbortSignal | undefined;
  readonly #onUserAbort: () => void;
  readonly #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #deadline: number | undefined;

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
      this.#deadline = Date.now() + timeoutMs;
      this.#timer = setTimeout(
        () => this.#ac.abort(new ProtowsError("deadline_exceeded", `no reply within ${timeoutMs} ms`)),
        timeoutMs,
      );
    }
  }

  get signal(): AbortSignal {
    return this.#ac.signal;
  }

  // leftMs is the time left before the timeout, in whole ms (at least 1),
  // or undefined without a timeout.
  leftMs(): number | undefined {
    if (this.#deadline === undefined) return undefined;
    return Math.min(0xffffffff, Math.max(1, Math.ceil(this.#deadline - Date.now())));
  }

  dispose(): void {
    clearTimeout(this.#timer);
    this.#user?.removeEventListener("abort", this.#onUserAbort);
  }
}

type StreamItem =
  | { kind: "message"; payload: unknown; seq: number }
  | { kind: "position"; position: WirePosition }
  | { kind: "end"; error?: ProtowsError }
  | { kind: "lost"; error: ProtowsError };

// Subscription is one stream's REQUEST on one connection: a queue of what
// arrived for its id.
class Subscription {
  readonly id: number;
  readonly #conn: Conn;
  readonly #signal: AbortSignal;
  readonly #queue: StreamItem[] = [];
  readonly #granter = new Granter();
  #wake: (() => void) | undefined;
  #done = false;

  constructor(conn: Conn, id: number, signal: AbortSignal) {
    this.#conn = conn;
    this.id = id;
    this.#signal = signal;
    conn.calls.set(id, {
      onEnvelope: (env) => {
        switch (env.kind) {
          case Kind.STREAM_MESSAGE:
            this.#push({ kind: "message", payload: env.payload, seq: env.seq ?? 0 });
            return;
          case Kind.STREAM_POSITION:
            // An absent position is the one with every field at its default.
            this.#push({ kind: "position", position: env.position ?? { epoch: "", offset: 0, recovery: Recovery.UNSPECIFIED, latest: 0 } });
            return;
          case Kind.STREAM_END:
            this.#finish({ kind: "end", error: env.error === undefined ? undefined : wireError(env) });
            return;
          case Kind.ERROR:
            this.#finish({ kind: "end", error: wireError(env) });
            return;
          case Kind.CREDIT:
            // Only for calls the client sends messages on; ignored here.
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
      // An abort wins over messages already queued: the loop that aborted
      // gets no more of them.
      if (this.#signal.aborted) {
        throw this.#signal.reason;
      }
      const item = this.#queue.shift();
      if (item !== undefined) {
        if (item.kind === "message") {
          // The application takes it now: grant it back, in batches.
          const grant = this.#granter.took();
          if (grant > 0 && !this.#done) {
            try {
              this.#conn.send([{ id: this.id, kind: Kind.CREDIT, credit: grant }]);
            } catch {
              // The connection is going; the stream hears of it.
            }
          }
        }
        return item;
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
      this.#conn.sendCancel(this.id);
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
