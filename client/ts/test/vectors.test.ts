// The golden vectors of codec/testdata/vectors, byte for byte, in both
// directions and both codecs: the same files the Go codec tests read.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { createRegistry, fromJson, toBinary, create, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import {
  EnvelopeSchema,
  AuthenticateRequestSchema,
  AuthenticateResponseSchema,
  Kind,
} from "../src/gen/protows/v1/protows_pb.js";
import { jsonCodec, protoCodec, type Codec, type WireEnvelope } from "../src/codec.js";
import { repoRoot } from "./repo.js";

interface Frame {
  name: string;
  codec: string;
  file: string;
  envelopes: JsonValue[];
}

const dir = join(repoRoot, "codec", "testdata", "vectors");
const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as { frames: Frame[] };
const utf8 = new TextDecoder("utf-8", { fatal: true });

// The types of the vectors' error details, which protojson names in "@type".
const registry = createRegistry(DurationSchema, AuthenticateResponseSchema);

// expected turns a vector's protojson Envelope into the codec-neutral form
// the codec reads and writes.
function expected(frame: Frame): WireEnvelope[] {
  return frame.envelopes.map((j) => {
    const e = fromJson(EnvelopeSchema, j, { registry });
    const w: WireEnvelope = { id: e.id, kind: e.kind };
    if (e.method !== "") w.method = e.method;
    if (e.methodId !== 0) w.methodId = e.methodId;
    if (e.payload.length > 0) {
      w.payload = frame.codec === "protows.v1.json" ? JSON.parse(utf8.decode(e.payload)) : e.payload;
    }
    if (e.error !== undefined) {
      w.error = { code: e.error.code, message: e.error.message };
      if (e.error.details.length > 0) {
        // The JSON codec holds a detail as its protojson object, which is
        // how index.json writes it; the Protobuf codec as an Any.
        w.error.details =
          frame.codec === "protows.v1.json"
            ? ((j as { error: { details: JsonObject[] } }).error.details)
            : e.error.details.map((a) => ({ typeUrl: a.typeUrl, value: a.value }));
      }
    }
    if (Object.keys(e.metadata).length > 0) w.metadata = { ...e.metadata };
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
}

function codecFor(name: string): Codec {
  return name === "protows.v1.json" ? jsonCodec() : protoCodec();
}

test("index covers both codecs and every kind", () => {
  const codecs = new Set(index.frames.map((f) => f.codec));
  assert.deepEqual([...codecs].sort(), ["protows.v1.json", "protows.v1.proto"]);
  const kinds = new Set(index.frames.flatMap((f) => expected(f).map((e) => e.kind)));
  for (const k of [
    Kind.REQUEST,
    Kind.REPLY,
    Kind.STREAM_MESSAGE,
    Kind.STREAM_END,
    Kind.CANCEL,
    Kind.ERROR,
    Kind.PING,
    Kind.PONG,
    Kind.CREDIT,
    Kind.STREAM_POSITION,
  ]) {
    assert.ok(kinds.has(k), `no vector of kind ${Kind[k]}`);
  }
  assert.ok(index.frames.length >= 30, `only ${index.frames.length} vectors`);
});

for (const frame of index.frames) {
  const codec = codecFor(frame.codec);
  const bytes = new Uint8Array(readFileSync(join(dir, frame.file)));

  test(`encode ${frame.codec} ${frame.name}`, () => {
    const out = codec.encodeFrame(expected(frame));
    const got = typeof out === "string" ? new TextEncoder().encode(out) : out;
    assert.equal(Buffer.from(got).toString("hex"), Buffer.from(bytes).toString("hex"));
  });

  test(`decode ${frame.codec} ${frame.name}`, () => {
    const got = codec.decodeFrame(codec.binary ? bytes : utf8.decode(bytes));
    assert.deepEqual(got, expected(frame));
    if (!codec.binary) {
      // The payload text round-trips to the exact bytes Go wrote.
      for (const [i, j] of frame.envelopes.entries()) {
        const raw = fromJson(EnvelopeSchema, j, { registry }).payload;
        if (raw.length > 0) {
          assert.equal(JSON.stringify(got[i]!.payload), utf8.decode(raw));
        }
      }
    }
  });
}

// The vectors' payloads are AuthenticateRequest (requests) and
// AuthenticateResponse (replies, stream messages): decoding them through
// each codec gives the same message, and encoding gives the same payload.
test("payloads decode and encode alike in both codecs", () => {
  const pairs = [
    ["reply", AuthenticateResponseSchema, { subject: "alice", expiresAt: 1795000000n }],
    ["request", AuthenticateRequestSchema, { token: "eyJhbGciOiJFUzI1NiJ9.e30.sig" }],
    ["reply_unicode", AuthenticateResponseSchema, { subject: "zoë «café» 🚀 \"quoted\" <tag> & \\ \n" }],
  ] as const;
  for (const [name, schema, fields] of pairs) {
    for (const codecName of ["protows.v1.proto", "protows.v1.json"]) {
      const frame = index.frames.find((f) => f.name === name && f.codec === codecName)!;
      const codec = codecFor(codecName);
      const env = expected(frame)[0]!;
      const msg = codec.decodePayload(schema, env.payload);
      const want = create(schema as typeof AuthenticateResponseSchema, fields as never);
      assert.deepEqual(toBinary(schema, msg as never), toBinary(schema, want as never), `${codecName} ${name}`);
      assert.deepEqual(codec.encodePayload(schema, msg as never), env.payload, `${codecName} ${name} re-encoded`);
    }
  }
});
