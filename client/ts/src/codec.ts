// The two codecs of the wire protocol (docs/PROTOCOL.md sections 2, 3 and 5).
// Both write exactly the bytes the Go codecs write, so the golden vectors of
// codec/testdata/vectors hold in both languages.

import {
  create,
  fromBinary,
  fromJson,
  toBinary,
  toJson,
  type DescMessage,
  type JsonObject,
  type JsonValue,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { codeName, codeNumber } from "./code.js";
import {
  EnvelopeSchema,
  FrameSchema,
  Kind,
  PositionSchema,
  Recovery,
  ResumeSchema,
  type ErrorSchema,
} from "./gen/protows/v1/protows_pb.js";

/** The subprotocol of the Protobuf codec (binary frames). */
export const PROTO_SUBPROTOCOL = "protows.v1.proto";
/** The subprotocol of the JSON codec (text frames). */
export const JSON_SUBPROTOCOL = "protows.v1.json";
/** The most envelopes one frame may carry. */
export const MAX_ENVELOPES_PER_FRAME = 1024;

/**
 * An error detail as the codec holds it, as a payload is held: for the
 * Protobuf codec a google.protobuf.Any (`typeUrl` and the Protobuf bytes of
 * the message); for the JSON codec the protojson object of the Any, with
 * its "@type". Neither codec resolves the type, so a detail of a type the
 * client does not know decodes like any other.
 */
export type WireDetail = { typeUrl: string; value: Uint8Array } | JsonObject;

/** The error of an envelope: a code number (never 0 once decoded), a message and typed details. */
export interface WireError {
  code: number;
  message: string;
  /** Typed details (docs/PROTOCOL.md, section 8.1); absent when there are none. */
  details?: WireDetail[];
}

/**
 * How a room stream with history should start (a REQUEST's `resume`,
 * docs/PROTOCOL.md section 14). Its presence, even with every field 0,
 * tells the server that the client understands STREAM_POSITION.
 */
export interface WireResume {
  /** The epoch of the client's last position; "" for none. */
  epoch: string;
  /** The offset of the last room message the client got in that epoch. */
  offset: number;
  /** How many of the room's latest messages to replay when not resuming. */
  history: number;
}

/** Where a room stream with history stands (a STREAM_POSITION's `position`). */
export interface WirePosition {
  /** The room's epoch. */
  epoch: string;
  /** The offset of the last room message before those that follow. */
  offset: number;
  /** The outcome of the REQUEST's resume (Recovery.UNSPECIFIED: not resuming). */
  recovery: Recovery;
  /** The room's latest offset when the position was taken. */
  latest: number;
}

/**
 * One envelope, codec-neutral. `payload` is what the codec uses for a
 * message: Protobuf bytes (Uint8Array) for the Protobuf codec, a parsed
 * protojson value for the JSON codec. Fields at their zero value are absent
 * on the wire.
 */
export interface WireEnvelope {
  id: number;
  kind: Kind;
  method?: string;
  methodId?: number;
  payload?: unknown;
  error?: WireError;
  metadata?: Record<string, string>;
  /**
   * The room sequence number of a STREAM_MESSAGE carrying a room broadcast
   * (0 or absent: not sequenced). At most 2^53-1, exact as a number.
   */
  seq?: number;
  /**
   * Flow control (docs/PROTOCOL.md section 3.6): the initial window on a
   * REQUEST, the grant of a CREDIT; 0 or absent otherwise.
   */
  credit?: number;
  /** The idempotency key of a REQUEST (docs/PROTOCOL.md, section 3.7). */
  idempotencyKey?: string;
  /** The time a REQUEST may take, in ms from its arrival (section 3.8). */
  timeoutMs?: number;
  /** REQUEST: how a room stream with history should start. */
  resume?: WireResume;
  /** STREAM_POSITION: where the room stream stands. */
  position?: WirePosition;
}

/** A codec: how envelopes and their payloads become WebSocket messages. */
export interface Codec {
  /** The WebSocket subprotocol that selects the codec. */
  readonly subprotocol: string;
  /** Whether frames are binary (else text) WebSocket messages. */
  readonly binary: boolean;
  /** Whether a REQUEST names its method by id (else by name). */
  readonly sendsMethodId: boolean;
  /** encodePayload encodes a message into the codec's payload form. */
  encodePayload<D extends DescMessage>(schema: D, msg: MessageShape<D>): unknown;
  /** decodePayload decodes a payload; an absent payload is the empty message. */
  decodePayload<D extends DescMessage>(schema: D, payload: unknown): MessageShape<D>;
  /** encodeFrame writes one frame carrying the envelopes, in order. */
  encodeFrame(envelopes: readonly WireEnvelope[]): Uint8Array | string;
  /** decodeFrame reads a frame; it throws a CodecError when it cannot. */
  decodeFrame(data: Uint8Array | string): WireEnvelope[];
}

/** CodecError is thrown for a frame that cannot be decoded. */
export class CodecError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(`protows codec: ${message}`, options);
    this.name = "CodecError";
  }
}

// Map keys are written in ascending byte-wise (UTF-8) order, as Go sorts
// them. UTF-8 byte order is code point order, which differs from the UTF-16
// code unit order of String.prototype.sort for characters above U+FFFF.
function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const ca = ia.next();
    const cb = ib.next();
    if (ca.done === true || cb.done === true) {
      return (ca.done === true ? 0 : 1) - (cb.done === true ? 0 : 1);
    }
    const d = (ca.value.codePointAt(0) ?? 0) - (cb.value.codePointAt(0) ?? 0);
    if (d !== 0) {
      return d;
    }
  }
}

function sortedKeys(m: Record<string, string> | undefined): string[] {
  return m === undefined ? [] : Object.keys(m).sort(compareCodePoints);
}

const emptyBytes = new Uint8Array(0);

/** protoCodec returns the Protobuf codec ("protows.v1.proto"). */
export function protoCodec(): Codec {
  return {
    subprotocol: PROTO_SUBPROTOCOL,
    binary: true,
    sendsMethodId: true,
    encodePayload<D extends DescMessage>(schema: D, msg: MessageShape<D>): Uint8Array {
      return toBinary(schema, msg);
    },
    decodePayload<D extends DescMessage>(schema: D, payload: unknown): MessageShape<D> {
      return fromBinary(schema, payload instanceof Uint8Array ? payload : emptyBytes);
    },
    encodeFrame(envelopes: readonly WireEnvelope[]): Uint8Array {
      const frame = create(FrameSchema, {
        envelopes: envelopes.map((e) => {
          const metadata: Record<string, string> = {};
          for (const k of sortedKeys(e.metadata)) {
            metadata[k] = e.metadata![k]!;
          }
          return create(EnvelopeSchema, {
            id: e.id,
            kind: e.kind,
            methodId: e.methodId ?? 0,
            method: e.method ?? "",
            payload: e.payload instanceof Uint8Array ? e.payload : emptyBytes,
            // The Protobuf codec's details are Anys (typeUrl and value).
            error: e.error as MessageInitShape<typeof ErrorSchema> | undefined,
            metadata,
            seq: BigInt(e.seq ?? 0),
            credit: e.credit ?? 0,
            idempotencyKey: e.idempotencyKey ?? "",
            timeoutMs: e.timeoutMs ?? 0,
            resume:
              e.resume === undefined
                ? undefined
                : create(ResumeSchema, {
                    epoch: e.resume.epoch,
                    offset: BigInt(e.resume.offset),
                    history: e.resume.history,
                  }),
            position:
              e.position === undefined
                ? undefined
                : create(PositionSchema, {
                    epoch: e.position.epoch,
                    offset: BigInt(e.position.offset),
                    recovery: e.position.recovery,
                    latest: BigInt(e.position.latest),
                  }),
          });
        }),
      });
      return toBinary(FrameSchema, frame);
    },
    decodeFrame(data: Uint8Array | string): WireEnvelope[] {
      if (typeof data === "string") {
        throw new CodecError("text frame on a Protobuf connection");
      }
      let frame;
      try {
        frame = fromBinary(FrameSchema, data, { readUnknownFields: false });
      } catch (err) {
        throw new CodecError("bad frame", { cause: err });
      }
      const n = frame.envelopes.length;
      if (n === 0 || n > MAX_ENVELOPES_PER_FRAME) {
        throw new CodecError(`a frame must carry 1 to ${MAX_ENVELOPES_PER_FRAME} envelopes, not ${n}`);
      }
      return frame.envelopes.map((e) => {
        const w: WireEnvelope = { id: e.id, kind: e.kind };
        if (e.method !== "") w.method = e.method;
        if (e.methodId !== 0) w.methodId = e.methodId;
        if (e.payload.length > 0) w.payload = e.payload;
        if (e.error !== undefined) {
          w.error = { code: e.error.code, message: e.error.message };
          if (e.error.details.length > 0) {
            w.error.details = e.error.details.map(({ typeUrl, value }) => ({ typeUrl, value }));
          }
        }
        if (Object.keys(e.metadata).length > 0) w.metadata = e.metadata;
        if (e.seq !== 0n) w.seq = Number(e.seq);
        if (e.credit !== 0) w.credit = e.credit;
        if (e.idempotencyKey !== "") w.idempotencyKey = e.idempotencyKey;
        if (e.timeoutMs !== 0) w.timeoutMs = e.timeoutMs;
        if (e.resume !== undefined) {
          w.resume = { epoch: e.resume.epoch, offset: Number(e.resume.offset), history: e.resume.history };
        }
        if (e.position !== undefined) {
          w.position = {
            epoch: e.position.epoch,
            offset: Number(e.position.offset),
            recovery: e.position.recovery,
            latest: Number(e.position.latest),
          };
        }
        return w;
      });
    },
  };
}

// JSON names of the kinds: the enum value name without KIND_, lower case.
const kindNames: Record<number, string> = {
  [Kind.REQUEST]: "request",
  [Kind.REPLY]: "reply",
  [Kind.STREAM_MESSAGE]: "stream_message",
  [Kind.STREAM_END]: "stream_end",
  [Kind.CANCEL]: "cancel",
  [Kind.ERROR]: "error",
  [Kind.PING]: "ping",
  [Kind.PONG]: "pong",
  [Kind.CREDIT]: "credit",
  [Kind.STREAM_POSITION]: "stream_position",
};
const kindValues = new Map<string, Kind>(Object.entries(kindNames).map(([n, s]) => [s, Number(n) as Kind]));

// JSON names of the recovery outcomes: the enum value name without
// RECOVERY_, lower case. UNSPECIFIED is never written (the key is omitted).
const recoveryNames: Record<number, string> = {
  [Recovery.RECOVERED]: "recovered",
  [Recovery.EPOCH_CHANGED]: "epoch_changed",
  [Recovery.TOO_OLD]: "too_old",
  [Recovery.UNAVAILABLE]: "unavailable",
};
const recoveryValues = new Map<string, Recovery>(
  Object.entries(recoveryNames).map(([n, s]) => [s, Number(n) as Recovery]),
);
// What a recovery name this runtime does not know reads as: an outcome
// newer than the runtime (docs/PROTOCOL.md section 5). No outcome's number,
// so that the stream reports it as "unknown" and lost, as it does an
// unknown number read by the Protobuf codec, never as UNSPECIFIED (a fresh
// start). It, and any number without a name, is written as "unknown".
const recoveryUnknown = -1 as Recovery;
const recoveryUnknownName = "unknown";

function writeJSONEnvelope(e: WireEnvelope): string {
  const parts: string[] = [];
  if (e.id !== 0) parts.push(`"id":${e.id}`);
  if (e.kind !== Kind.UNSPECIFIED) {
    const name = kindNames[e.kind];
    if (name === undefined) {
      throw new CodecError(`kind ${e.kind} has no JSON name`);
    }
    parts.push(`"kind":"${name}"`);
  }
  if (e.method !== undefined && e.method !== "") parts.push(`"method":${JSON.stringify(e.method)}`);
  if (e.methodId !== undefined && e.methodId !== 0) parts.push(`"methodId":${e.methodId}`);
  if (e.payload !== undefined) parts.push(`"payload":${JSON.stringify(e.payload)}`);
  if (e.error !== undefined) {
    const ep: string[] = [];
    if (e.error.code !== 0) ep.push(`"code":"${codeName(e.error.code)}"`);
    if (e.error.message !== "") ep.push(`"message":${JSON.stringify(e.error.message)}`);
    // The JSON codec's details are the protojson objects of their Anys.
    if (e.error.details?.length) ep.push(`"details":${JSON.stringify(e.error.details)}`);
    parts.push(`"error":{${ep.join(",")}}`);
  }
  const keys = sortedKeys(e.metadata);
  if (keys.length > 0) {
    const mp = keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(e.metadata![k])}`);
    parts.push(`"metadata":{${mp.join(",")}}`);
  }
  if (e.seq !== undefined && e.seq !== 0) parts.push(`"seq":${e.seq}`);
  if (e.credit) parts.push(`"credit":${e.credit}`);
  if (e.idempotencyKey) parts.push(`"idempotencyKey":${JSON.stringify(e.idempotencyKey)}`);
  if (e.timeoutMs) parts.push(`"timeoutMs":${e.timeoutMs}`);
  if (e.resume !== undefined) {
    const rp: string[] = [];
    if (e.resume.epoch !== "") rp.push(`"epoch":${JSON.stringify(e.resume.epoch)}`);
    if (e.resume.offset !== 0) rp.push(`"offset":${e.resume.offset}`);
    if (e.resume.history !== 0) rp.push(`"history":${e.resume.history}`);
    parts.push(`"resume":{${rp.join(",")}}`);
  }
  if (e.position !== undefined) {
    const pp: string[] = [];
    if (e.position.epoch !== "") pp.push(`"epoch":${JSON.stringify(e.position.epoch)}`);
    if (e.position.offset !== 0) pp.push(`"offset":${e.position.offset}`);
    if (e.position.recovery !== Recovery.UNSPECIFIED) {
      const name = recoveryNames[e.position.recovery] ?? recoveryUnknownName;
      pp.push(`"recovery":"${name}"`);
    }
    if (e.position.latest !== 0) pp.push(`"latest":${e.position.latest}`);
    parts.push(`"position":{${pp.join(",")}}`);
  }
  return `{${parts.join(",")}}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function readUint32(v: unknown, key: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new CodecError(`bad envelope: ${key} is not a uint32`);
  }
  return v;
}

function readString(v: unknown, key: string): string {
  if (typeof v !== "string") {
    throw new CodecError(`bad envelope: ${key} is not a string`);
  }
  return v;
}

function readJSONEnvelope(v: unknown): WireEnvelope {
  if (!isObject(v)) {
    throw new CodecError("bad envelope: not an object");
  }
  const e: WireEnvelope = { id: 0, kind: Kind.UNSPECIFIED };
  // null is read as absent, as Go's encoding/json does.
  if (v.id != null) e.id = readUint32(v.id, "id");
  if (v.kind != null) {
    const k = kindValues.get(readString(v.kind, "kind"));
    if (k === undefined) {
      throw new CodecError(`bad envelope: unknown kind ${JSON.stringify(v.kind)}`);
    }
    e.kind = k;
  }
  if (v.method != null) {
    const m = readString(v.method, "method");
    if (m !== "") e.method = m;
  }
  if (v.methodId != null) {
    const id = readUint32(v.methodId, "methodId");
    if (id !== 0) e.methodId = id;
  }
  if (v.payload != null) e.payload = v.payload;
  if (v.error != null) {
    if (!isObject(v.error)) {
      throw new CodecError("bad envelope: error is not an object");
    }
    const err: WireError = { code: 0, message: "" };
    if (v.error.code != null) {
      const c = codeNumber(readString(v.error.code, "error.code"));
      if (c === undefined) {
        throw new CodecError(`bad envelope: invalid code ${JSON.stringify(v.error.code)}`);
      }
      err.code = c;
    }
    if (v.error.message != null) err.message = readString(v.error.message, "error.message");
    const ds = v.error.details;
    if (ds != null) {
      if (!Array.isArray(ds) || !ds.every((d) => isObject(d) && typeof d["@type"] == "string" && d["@type"] != "")) {
        throw new CodecError('bad envelope: error.details: want objects with "@type"');
      }
      if (ds.length > 0) err.details = ds as JsonObject[];
    }
    e.error = err;
  }
  if (v.metadata != null) {
    if (!isObject(v.metadata)) {
      throw new CodecError("bad envelope: metadata is not an object");
    }
    const md: Record<string, string> = {};
    for (const [k, val] of Object.entries(v.metadata)) {
      md[k] = readString(val, `metadata[${JSON.stringify(k)}]`);
    }
    if (Object.keys(md).length > 0) e.metadata = md;
  }
  if (v.seq != null) {
    const seq = readOffset(v.seq, "seq");
    if (seq !== 0) e.seq = seq;
  }
  if (v.resume != null) {
    if (!isObject(v.resume)) {
      throw new CodecError("bad envelope: resume is not an object");
    }
    const r = v.resume;
    e.resume = {
      epoch: r.epoch != null ? readString(r.epoch, "resume.epoch") : "",
      offset: r.offset != null ? readOffset(r.offset, "resume.offset") : 0,
      history: r.history != null ? readUint32(r.history, "resume.history") : 0,
    };
  }
  if (v.position != null) {
    if (!isObject(v.position)) {
      throw new CodecError("bad envelope: position is not an object");
    }
    const p = v.position;
    let recovery = Recovery.UNSPECIFIED;
    if (p.recovery != null) {
      const name = readString(p.recovery, "position.recovery");
      if (name !== "") {
        recovery = recoveryValues.get(name) ?? recoveryUnknown;
      }
    }
    e.position = {
      epoch: p.epoch != null ? readString(p.epoch, "position.epoch") : "",
      offset: p.offset != null ? readOffset(p.offset, "position.offset") : 0,
      recovery,
      latest: p.latest != null ? readOffset(p.latest, "position.latest") : 0,
    };
  }
  if (v.credit != null) {
    const c = readUint32(v.credit, "credit");
    if (c !== 0) e.credit = c;
  }
  if (v.idempotencyKey != null) {
    const k = readString(v.idempotencyKey, "idempotencyKey");
    if (k !== "") e.idempotencyKey = k;
  }
  if (v.timeoutMs != null) {
    const t = readUint32(v.timeoutMs, "timeoutMs");
    if (t !== 0) e.timeoutMs = t;
  }
  return e;
}

// readOffset reads a room sequence number or offset: an integer from 0 to
// 2^53-1, which servers never exceed (docs/PROTOCOL.md section 3.5).
function readOffset(v: unknown, key: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new CodecError(`bad envelope: ${key} is not an integer from 0 to 2^53-1`);
  }
  return v;
}

/** jsonCodec returns the JSON codec ("protows.v1.json"). */
export function jsonCodec(): Codec {
  return {
    subprotocol: JSON_SUBPROTOCOL,
    binary: false,
    sendsMethodId: false,
    encodePayload<D extends DescMessage>(schema: D, msg: MessageShape<D>): JsonValue {
      return toJson(schema, msg);
    },
    decodePayload<D extends DescMessage>(schema: D, payload: unknown): MessageShape<D> {
      if (payload === undefined) {
        return create(schema);
      }
      // Unknown payload fields are ignored, as the Protobuf codec skips
      // unknown fields: a newer server may add some.
      return fromJson(schema, payload as JsonValue, { ignoreUnknownFields: true });
    },
    encodeFrame(envelopes: readonly WireEnvelope[]): string {
      if (envelopes.length === 0) {
        throw new CodecError("a frame must carry at least one envelope");
      }
      // Strings as JSON.stringify writes them, U+2028 and U+2029 as they
      // are: the Go codec writes the same (PROTOCOL.md section 5).
      return envelopes.length === 1
        ? writeJSONEnvelope(envelopes[0]!)
        : `[${envelopes.map(writeJSONEnvelope).join(",")}]`;
    },
    decodeFrame(data: Uint8Array | string): WireEnvelope[] {
      if (typeof data !== "string") {
        throw new CodecError("binary frame on a JSON connection");
      }
      let v: unknown;
      try {
        v = JSON.parse(data);
      } catch (err) {
        throw new CodecError("bad frame", { cause: err });
      }
      if (!Array.isArray(v)) {
        return [readJSONEnvelope(v)];
      }
      if (v.length === 0 || v.length > MAX_ENVELOPES_PER_FRAME) {
        throw new CodecError(`a frame must carry 1 to ${MAX_ENVELOPES_PER_FRAME} envelopes, not ${v.length}`);
      }
      return v.map(readJSONEnvelope);
    },
  };
}
