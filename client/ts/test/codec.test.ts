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
import { ProtowsError } from "../src/error.js";
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
