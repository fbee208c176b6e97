// The frame inspector's measurements: every WebSocket message the page
// sends or receives, its size in the codec on the wire, and the size the
// other codec would have given the same envelopes. No DOM here: main.ts
// shows the records.
//
// The client takes a WebSocket constructor (ClientOptions.WebSocket), so
// the inspector wraps the browser's: it sees the frames exactly as they
// cross the socket and hands them on untouched. It decodes each frame with
// the connection's codec, re-encodes the payloads with the other codec
// (which needs the message types: the method of a REQUEST, and of the call
// an answer belongs to) and writes the frame as that codec's client or
// server would: a Protobuf REQUEST names its method by id, a JSON one by
// name (docs/PROTOCOL.md section 3.2).
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { WebSocketConstructor, WebSocketLike } from "@protows/client";
import {
  AuthService,
  Kind,
  jsonCodec,
  methodId,
  methodName,
  protoCodec,
  type Codec,
  type WireEnvelope,
} from "@protows/client/protocol";

/** The page's two codecs, by the name ClientOptions.codec takes. */
export type CodecName = "proto" | "json";

/** One WebSocket message of the page. */
export interface FrameRecord {
  /** Counts the page's frames from 1. */
  readonly n: number;
  readonly dir: "sent" | "received";
  /** The codec on the wire. */
  readonly wire: CodecName;
  /** The kind of each envelope, as the JSON codec names it ("request", "stream_message"...). */
  readonly kinds: readonly string[];
  /** The id of each envelope (a call's, or a PING's). */
  readonly ids: readonly number[];
  /** The methods the envelopes concern, by short name ("Send"), without repeats. */
  readonly methods: readonly string[];
  /** Bytes of the frame in each codec: the wire's as sent, the other's as re-encoded; undefined when it could not be. */
  readonly bytes: { readonly proto: number | undefined; readonly json: number | undefined };
  /** Why the other codec's size is missing. */
  readonly problem?: string;
}

const codecs: Record<CodecName, Codec> = { proto: protoCodec(), json: jsonCodec() };

const kindNames: Partial<Record<Kind, string>> = {
  [Kind.REQUEST]: "request",
  [Kind.REPLY]: "reply",
  [Kind.STREAM_MESSAGE]: "stream_message",
  [Kind.STREAM_END]: "stream_end",
  [Kind.CANCEL]: "cancel",
  [Kind.ERROR]: "error",
  [Kind.PING]: "ping",
  [Kind.PONG]: "pong",
  [Kind.CREDIT]: "credit",
};

const utf8 = new TextEncoder();

/** byteSize is a frame's length on the wire: a text frame carries UTF-8. */
export function byteSize(data: unknown): number {
  if (typeof data === "string") return utf8.encode(data).length;
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (ArrayBuffer.isView(data)) return data.byteLength;
  throw new Error(`unexpected frame data ${Object.prototype.toString.call(data)}`);
}

function frameData(data: unknown): Uint8Array | string {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new Error(`unexpected frame data ${Object.prototype.toString.call(data)}`);
}

/**
 * FrameInspector measures the frames of the clients whose WebSocket it
 * made (webSocket) and reports each to onFrame.
 */
export class FrameInspector {
  readonly #onFrame: (f: FrameRecord) => void;
  readonly #byName = new Map<string, DescMethod>();
  readonly #byId = new Map<number, DescMethod>();
  #n = 0;

  /** services are those whose messages the frames may carry; the runtime's AuthService is always known. */
  constructor(services: readonly DescService[], onFrame: (f: FrameRecord) => void) {
    this.#onFrame = onFrame;
    for (const s of [AuthService, ...services]) {
      for (const m of s.methods) {
        const name = methodName(m);
        this.#byName.set(name, m);
        this.#byId.set(methodId(name), m);
      }
    }
  }

  /**
   * webSocket returns a WebSocket constructor for ClientOptions.WebSocket
   * that reports the frames of its sockets, which speak wire.
   */
  webSocket(wire: CodecName, base: WebSocketConstructor = globalThis.WebSocket): WebSocketConstructor {
    const inspector = this;
    return class InspectedWebSocket implements WebSocketLike {
      readonly #ws: WebSocketLike;
      readonly #conn: ConnFrames;
      #onmessage: ((ev: any) => void) | null = null;

      constructor(url: string, protocols?: string | string[]) {
        this.#ws = new base(url, protocols);
        this.#conn = new ConnFrames(inspector, wire);
      }
      get binaryType(): string {
        return this.#ws.binaryType;
      }
      set binaryType(v: string) {
        this.#ws.binaryType = v;
      }
      get protocol(): string {
        return this.#ws.protocol;
      }
      get onopen(): ((ev: any) => void) | null {
        return this.#ws.onopen;
      }
      set onopen(h: ((ev: any) => void) | null) {
        this.#ws.onopen = h;
      }
      get onclose(): ((ev: any) => void) | null {
        return this.#ws.onclose;
      }
      set onclose(h: ((ev: any) => void) | null) {
        this.#ws.onclose = h;
      }
      get onerror(): ((ev: any) => void) | null {
        return this.#ws.onerror;
      }
      set onerror(h: ((ev: any) => void) | null) {
        this.#ws.onerror = h;
      }
      get onmessage(): ((ev: any) => void) | null {
        return this.#onmessage;
      }
      set onmessage(h: ((ev: any) => void) | null) {
        this.#onmessage = h;
        this.#ws.onmessage =
          h === null
            ? null
            : (ev: { data: unknown }) => {
                h(ev);
                // After the client had it: measuring costs the page, not
                // the connection.
                this.#conn.record("received", ev.data);
              };
      }
      send(data: string | ArrayBufferView | ArrayBufferLike): void {
        this.#ws.send(data);
        this.#conn.record("sent", data);
      }
      close(code?: number, reason?: string): void {
        this.#ws.close(code, reason);
      }
    };
  }

  /** method finds a REQUEST's method by name or id; undefined when unknown. */
  method(env: WireEnvelope): DescMethod | undefined {
    if (env.method !== undefined) return this.#byName.get(env.method);
    if (env.methodId !== undefined) return this.#byId.get(env.methodId);
    return undefined;
  }

  /** report numbers a connection's record and hands it to onFrame. */
  report(f: Omit<FrameRecord, "n">): void {
    this.#onFrame({ n: ++this.#n, ...f });
  }
}

const payloadKinds = new Set<Kind>([Kind.REQUEST, Kind.REPLY, Kind.STREAM_MESSAGE]);
const terminalKinds = new Set<Kind>([Kind.REPLY, Kind.ERROR, Kind.STREAM_END]);

/** What the inspector knows of one connection: the methods of its calls in flight. */
class ConnFrames {
  readonly #inspector: FrameInspector;
  readonly #wire: CodecName;
  readonly #other: CodecName;
  readonly #calls = new Map<number, DescMethod>();

  constructor(inspector: FrameInspector, wire: CodecName) {
    this.#inspector = inspector;
    this.#wire = wire;
    this.#other = wire === "proto" ? "json" : "proto";
  }

  record(dir: "sent" | "received", data: unknown): void {
    let size: number;
    try {
      size = byteSize(data);
    } catch {
      return; // not a frame of ours: nothing to measure
    }
    const bytes = { proto: undefined as number | undefined, json: undefined as number | undefined };
    bytes[this.#wire] = size;
    let kinds: string[] = [];
    let ids: number[] = [];
    const methods: string[] = [];
    let problem: string | undefined;
    try {
      const envs = codecs[this.#wire].decodeFrame(frameData(data));
      kinds = envs.map((e) => kindNames[e.kind] ?? `kind ${e.kind}`);
      ids = envs.map((e) => e.id);
      const converted = envs.map((e) => {
        const m = this.#methodOf(e, dir);
        if (m !== undefined && !methods.includes(m.name)) methods.push(m.name);
        return this.#convert(e, m, dir);
      });
      bytes[this.#other] = byteSize(codecs[this.#other].encodeFrame(converted));
    } catch (err) {
      problem = err instanceof Error ? err.message : String(err);
    }
    this.#inspector.report({ dir, wire: this.#wire, kinds, ids, methods, bytes, ...(problem === undefined ? {} : { problem }) });
  }

  // The method of a REQUEST, or of the call an answer belongs to; it
  // learns the calls from their REQUESTs and forgets them at their end
  // (the server's REPLY, ERROR or STREAM_END; a client's STREAM_END is a
  // half-close).
  #methodOf(e: WireEnvelope, dir: "sent" | "received"): DescMethod | undefined {
    if (e.kind === Kind.REQUEST) {
      const m = this.#inspector.method(e);
      if (m !== undefined) this.#calls.set(e.id, m);
      return m;
    }
    if (e.kind === Kind.PING || e.kind === Kind.PONG) return undefined; // ids of their own
    const m = this.#calls.get(e.id);
    if ((dir === "received" && terminalKinds.has(e.kind)) || (dir === "sent" && e.kind === Kind.CANCEL)) this.#calls.delete(e.id);
    return m;
  }

  // The envelope as the other codec would carry it.
  #convert(e: WireEnvelope, m: DescMethod | undefined, dir: "sent" | "received"): WireEnvelope {
    const from = codecs[this.#wire];
    const to = codecs[this.#other];
    const out: WireEnvelope = { ...e };
    if (e.kind === Kind.REQUEST) {
      if (m === undefined) throw new Error("a request for an unknown method");
      const name = methodName(m);
      delete out.method;
      delete out.methodId;
      if (to.sendsMethodId) out.methodId = methodId(name);
      else out.method = name;
    }
    // The REQUEST of a call whose messages stream from the client has none.
    const noPayload = e.kind === Kind.REQUEST && m !== undefined && (m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming");
    if (payloadKinds.has(e.kind) && !noPayload) {
      if (m === undefined) throw new Error(`a ${kindNames[e.kind]} of an unknown call`);
      // What the client sends is of the input type, what it receives of the output type.
      const schema = dir === "sent" ? m.input : m.output;
      const payload = to.encodePayload(schema, from.decodePayload(schema, e.payload));
      // The Protobuf codec leaves an empty payload out; JSON writes {}.
      if (payload instanceof Uint8Array && payload.length === 0) delete out.payload;
      else out.payload = payload;
    }
    return out;
  }
}
