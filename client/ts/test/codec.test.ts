// Codec behaviour beyond the vectors: what readers accept and refuse, and
// the details that make the JSON bytes equal to Go's.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Kind } from "../src/gen/protows/v1/protows_pb.js";
import { CodecError, jsonCodec, protoCodec } from "../src/codec.js";
import { codeName, codeNumber } from "../src/code.js";
import { methodId, methodName } from "../src/method.js";
import { backoffDelay } from "../src/backoff.js";
import { ProtowsError, wireError } from "../src/error.js";
import { create, toBinary } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { AuthService } from "../src/gen/protows/v1/protows_pb.js";
import { repoRoot, pkgDir } from "./repo.js";

test("method ids are FNV-1a 32 of the full name", () => {
  assert.equal(methodId("/chat.v1.ChatService/Send"), 0xa462e88b);
  assert.equal(methodId(""), 0x811c9dc5);
  assert.equal(methodId("a"), 0xe40c292c); // published FNV-1a test vector
  assert.equal(methodName(AuthService.method.authenticate), "/protows.v1.AuthService/Authenticate");
});

test("code names match Go's protows.Code String form", () => {
  const want = ["canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists",
    "permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range", "unimplemented",
    "internal", "unavailable", "data_loss", "unauthenticated"];
  want.forEach((name, i) => {
    assert.equal(codeName(i + 1), name);
    assert.equal(codeNumber(name), i + 1);
  });
  assert.equal(codeName(99), "code_99");
  assert.equal(codeNumber("code_99"), 99);
  assert.equal(codeNumber("code_0"), undefined);
  assert.equal(codeNumber("ok"), undefined);
  const err = new ProtowsError(5, "room gone");
  assert.equal(err.code, "not_found");
  assert.equal(err.message, "protows: not_found: room gone");
  assert.equal(err.rawMessage, "room gone");
});

test("JSON reader: null is absent, unknown keys ignored, white space allowed", () => {
  const got = jsonCodec().decodeFrame(' [ {"id":3,"kind":"reply","payload":null,"extra":{"a":1},"metadata":null} ,\n{"kind":"error","error":{"code":"code_77"}} ] ');
  assert.deepEqual(got, [
    { id: 3, kind: Kind.REPLY },
    { id: 0, kind: Kind.ERROR, error: { code: 77, message: "" } },
  ]);
});

test("JSON reader: a recovery name it does not know is an unknown outcome, written back as unknown", () => {
  const c = jsonCodec();
  const e = c.decodeFrame('{"id":3,"kind":"stream_position","position":{"epoch":"e","offset":4,"recovery":"partly_recovered","latest":9}}')[0]!;
  assert.equal(e.kind, Kind.STREAM_POSITION);
  assert.deepEqual(e.position, { epoch: "e", offset: 4, recovery: -1, latest: 9 });
  const again = c.encodeFrame([e]) as string;
  assert.equal(again, '{"id":3,"kind":"stream_position","position":{"epoch":"e","offset":4,"recovery":"unknown","latest":9}}');
  assert.deepEqual(c.decodeFrame(again)[0]!.position, e.position);
});

test("JSON reader refuses bad frames", () => {
  const c = jsonCodec();
  for (const bad of ["", "[]", "{", '{"kind":"nope"}', '{"id":-1}', '{"id":1.5}', '{"id":"1"}', "3",
    '{"error":{"code":"bogus"}}', '{"metadata":{"a":1}}', `[${'{"kind":"ping"},'.repeat(1024)}{"kind":"ping"}]`]) {
    assert.throws(() => c.decodeFrame(bad), CodecError, bad.slice(0, 40));
  }
  assert.throws(() => c.decodeFrame(new Uint8Array([1])), CodecError);
});

test("JSON writer leaves U+2028/2029 as they are, as JSON.stringify and Go do, and sorts keys by code point", () => {
  const out = jsonCodec().encodeFrame([
    { id: 1, kind: Kind.REQUEST, method: "/a.B/C", payload: { text: "a\u2028b\u2029" }, metadata: { "\u{1F600}": "1", "\uFFFD": "2", b: "", a: "<&>", n: "x\u2028\\u2029" } },
  ]);
  assert.equal(out, '{"id":1,"kind":"request","method":"/a.B/C","payload":{"text":"a\u2028b\u2029"},"metadata":{"a":"<&>","b":"","n":"x\u2028\\\\u2029","\uFFFD":"2","\u{1F600}":"1"}}');
});

test("Protobuf reader refuses bad frames", () => {
  const c = protoCodec();
  assert.throws(() => c.decodeFrame(new Uint8Array(0)), CodecError); // no envelope
  assert.throws(() => c.decodeFrame(new Uint8Array([0x0a, 0x05, 0x08])), CodecError); // truncated
  assert.throws(() => c.decodeFrame("text"), CodecError);
  const many = new Uint8Array(1025 * 2);
  for (let i = 0; i < 1025; i++) many[i * 2] = 0x0a; // 1025 empty envelopes
  assert.throws(() => c.decodeFrame(many), CodecError);
  assert.equal(c.decodeFrame(many.subarray(0, 2048)).length, 1024);
});

test("backoff is exponential with full jitter", () => {
  const b = { initialMs: 100, maxMs: 1000, multiplier: 2, resetAfterMs: 0 };
  assert.equal(backoffDelay(b, 0, () => 0.999), 99);
  assert.equal(backoffDelay(b, 3, () => 0.5), 400);
  assert.equal(backoffDelay(b, 10, () => 0.5), 500); // capped at max
  assert.equal(backoffDelay(b, 2, () => 0), 0);
});

test("the runtime's copy of protows_pb.ts is the generated one", () => {
  // client/ts must be self-contained when packed, so it carries a copy of
  // gen/ts/protows/v1/protows_pb.ts; `npm run sync-gen` refreshes it.
  const gen = readFileSync(join(repoRoot, "gen", "ts", "protows", "v1", "protows_pb.ts"), "utf8");
  const copy = readFileSync(join(pkgDir, "src", "gen", "protows", "v1", "protows_pb.ts"), "utf8");
  assert.ok(copy === gen, "client/ts/src/gen/protows/v1/protows_pb.ts is stale: run npm run sync-gen -w client/ts");
});

test("error details of unknown types decode and are kept as they came, in both codecs", () => {
  const obj = { "@type": "type.googleapis.com/acme.v1.Quota", limit: 5 };
  const [j] = jsonCodec().decodeFrame(JSON.stringify({ id: 3, kind: "error", error: { code: "aborted", details: [obj] } }));
  const jerr = wireError(j!);
  assert.equal(jerr.details.length, 1);
  assert.equal(jerr.details[0]!.type, "acme.v1.Quota");
  assert.deepEqual(jerr.details[0]!.json, obj);
  assert.deepEqual(jerr.findDetails(DurationSchema), []);

  const bin = protoCodec().encodeFrame([
    { id: 3, kind: Kind.ERROR, error: { code: 10, message: "", details: [{ typeUrl: "type.googleapis.com/acme.v1.Quota", value: new Uint8Array([8, 5]) }] } },
  ]);
  const [p] = protoCodec().decodeFrame(bin);
  const perr = wireError(p!);
  assert.equal(perr.details[0]!.type, "acme.v1.Quota");
  assert.deepEqual([...perr.details[0]!.value!], [8, 5]);

  // A detail that is not an object with "@type" makes the frame undecodable.
  for (const bad of [[5], [{}], [{ "@type": "" }], [null], {}]) {
    assert.throws(() => jsonCodec().decodeFrame(JSON.stringify({ id: 1, kind: "error", error: { details: bad } })), CodecError);
  }
});

test("findDetails decodes known details in both codecs, the well-known types' JSON form included", () => {
  const json = jsonCodec().decodeFrame(
    '{"id":1,"kind":"error","error":{"code":"aborted","details":[{"@type":"type.googleapis.com/google.protobuf.Duration","value":"1.500s"},{"@type":"type.googleapis.com/google.protobuf.Duration","value":"2s"}]}}',
  );
  const d = wireError(json[0]!).findDetails(DurationSchema);
  assert.deepEqual(d.map((x) => [x.seconds, x.nanos]), [[1n, 500_000_000], [2n, 0]]);
  const any = { typeUrl: "type.googleapis.com/google.protobuf.Duration", value: toBinary(DurationSchema, create(DurationSchema, { seconds: 3n })) };
  const proto = protoCodec().decodeFrame(protoCodec().encodeFrame([{ id: 1, kind: Kind.ERROR, error: { code: 10, message: "", details: [any] } }]));
  assert.equal(wireError(proto[0]!).findDetails(DurationSchema)[0]!.seconds, 3n);
});

test("idempotency keys and timeouts round-trip in both codecs", () => {
  for (const codec of [jsonCodec(), protoCodec()]) {
    const env = { id: 4, kind: Kind.REQUEST, method: "/a.B/C", idempotencyKey: "k-1", timeoutMs: 4294967295 };
    assert.deepEqual(codec.decodeFrame(codec.encodeFrame([env])), [env]);
  }
  assert.throws(() => jsonCodec().decodeFrame('{"id":1,"kind":"request","timeoutMs":-1}'), CodecError);
  assert.throws(() => jsonCodec().decodeFrame('{"id":1,"kind":"request","idempotencyKey":5}'), CodecError);
});
