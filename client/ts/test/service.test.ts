// createClient: a typed client from protoc-gen-es's service descriptor,
// without protoc-gen-protows-es. Against the real Go server in both codecs
// (unary calls, errors, a server stream, and an idempotent method retried
// after its connection was lost while a non-idempotent one fails), and
// against descriptors built at run time for what the test service lacks
// (method names that need care, idempotency levels, client-streaming and
// bidirectional methods).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { create, createFileRegistry, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import WebSocket from "ws";
import {
  Client,
  ConnectionLostError,
  ProtowsError,
  createClient,
  type CallOptions,
  type ClientStreamOptions,
  type ServiceClient,
  type StreamOptions,
  type WebSocketConstructor,
} from "../src/index.js";
import { methodId } from "../src/protocol.js";
import { TestService, type CountResponse, type EchoResponse } from "../../../gen/ts/protows/test/v1/test_pb.js";
import { GoServer } from "./goserver.js";
import { BlackholeProxy } from "./proxy.js";

const WS = WebSocket as unknown as WebSocketConstructor;

// A service descriptor made from a FileDescriptorProto, as protoc-gen-es's
// file descriptors are: methods named Then, Constructor and ToString, the
// three idempotency levels, and (when withStreams) a client-streaming and
// a bidirectional method.
function service(withStreams: boolean): DescService {
  const m = (name: string, level = MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN, kind: "" | "client" | "bidi" = "") => ({
    name,
    inputType: ".x.v1.M",
    outputType: ".x.v1.M",
    clientStreaming: kind !== "",
    serverStreaming: kind === "bidi",
    options: { idempotencyLevel: level },
  });
  const methods = [
    m("Then"),
    m("Constructor", MethodOptions_IdempotencyLevel.IDEMPOTENT),
    m("ToString", MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS),
    { ...m("Watch"), serverStreaming: true },
  ];
  if (withStreams) methods.push(m("Upload", undefined, "client"), m("Chat", undefined, "bidi"));
  const file = create(FileDescriptorProtoSchema, {
    name: "x/v1/x.proto",
    package: "x.v1",
    syntax: "proto3",
    messageType: [{ name: "M", field: [{ name: "text", number: 1, type: 9, label: 1, jsonName: "text" }] }],
    service: [{ name: "S", method: methods }],
  });
  const s = createFileRegistry(file, () => undefined).getService("x.v1.S");
  assert.ok(s !== undefined);
  return s;
}

// A stand-in for Client that records what createClient's methods pass it.
function recorder(): { client: Client; calls: { kind: string; method: string; request: unknown; options: unknown }[] } {
  const calls: { kind: string; method: string; request: unknown; options: unknown }[] = [];
  const client = {
    unary: (method: { name: string }, request: unknown, options?: CallOptions) => {
      calls.push({ kind: "unary", method: method.name, request, options });
      return Promise.resolve({});
    },
    serverStream: (method: { name: string }, request: unknown, options?: StreamOptions) => {
      calls.push({ kind: "stream", method: method.name, request, options });
      return (async function* () {})();
    },
    clientStream: (method: { name: string }, requests: unknown, options?: ClientStreamOptions) => {
      calls.push({ kind: "client", method: method.name, request: requests, options });
      return Promise.resolve({});
    },
    bidiStream: (method: { name: string }, options?: ClientStreamOptions) => {
      calls.push({ kind: "bidi", method: method.name, request: undefined, options });
      return {};
    },
  } as unknown as Client;
  return { client, calls };
}

test("createClient names methods as the generated classes do and takes idempotency from the method options", async () => {
  const { client, calls } = recorder();
  const svc = createClient(service(false), client) as unknown as Record<string, (req: unknown, opts?: CallOptions) => unknown>;
  assert.deepEqual(Object.keys(svc).sort(), ["constructor$", "then$", "toString$", "watch"]);
  // Not a thenable: awaiting the client gives the client.
  assert.equal(await (svc as unknown), svc);
  const signal = new AbortController().signal;
  await svc.then$!({ text: "a" }, { signal });
  await svc.constructor$!({ text: "b" });
  await svc.toString$!({ text: "c" }, { timeoutMs: 5 });
  await svc.constructor$!({ text: "d" }, { idempotent: false });
  for await (const _ of svc.watch!({ text: "e" }, { resubscribe: false }) as AsyncIterable<unknown>) {
    assert.fail("the recorder's stream is empty");
  }
  assert.deepEqual(calls, [
    { kind: "unary", method: "Then", request: { text: "a" }, options: { signal } }, // IDEMPOTENCY_UNKNOWN
    { kind: "unary", method: "Constructor", request: { text: "b" }, options: { idempotent: true } }, // IDEMPOTENT
    { kind: "unary", method: "ToString", request: { text: "c" }, options: { idempotent: true, timeoutMs: 5 } }, // NO_SIDE_EFFECTS
    { kind: "unary", method: "Constructor", request: { text: "d" }, options: { idempotent: false } }, // the call's own word wins
    { kind: "stream", method: "Watch", request: { text: "e" }, options: { resubscribe: false } },
  ]);
});

test("createClient makes client-streaming and bidirectional methods", async () => {
  const { client, calls } = recorder();
  const svc = createClient(service(true), client) as unknown as Record<string, (...args: unknown[]) => unknown>;
  assert.deepEqual(Object.keys(svc).sort(), ["chat", "constructor$", "then$", "toString$", "upload", "watch"]);
  const reqs = [{ text: "a" }, { text: "b" }];
  await svc.upload!(reqs, { timeoutMs: 7 });
  svc.chat!({ metadata: { k: "v" } });
  assert.deepEqual(calls, [
    { kind: "client", method: "Upload", request: reqs, options: { timeoutMs: 7 } },
    { kind: "bidi", method: "Chat", request: undefined, options: { metadata: { k: "v" } } },
  ]);
});

for (const codec of ["proto", "json"] as const) {
  describe(`createClient on the Go server, ${codec}`, () => {
    let server: GoServer;
    before(async () => {
      server = await GoServer.start();
    });
    after(() => server.stop());

    test("unary calls, errors and a server stream through the descriptor", async () => {
      const client = new Client({ url: server.url, codec, WebSocket: WS });
      try {
        const svc: ServiceClient<typeof TestService> = createClient(TestService, client);
        // The types come from the descriptor: these do not compile.
        // @ts-expect-error: EchoRequest has no field "nope"
        void (() => svc.echo({ nope: 1 }));
        // @ts-expect-error: a server stream is an AsyncIterable, not a promise
        void (() => svc.count({}).then);
        const res: EchoResponse = await svc.echo({ text: "by descriptor «ü»" }, { timeoutMs: 5000 });
        assert.equal(res.text, "by descriptor «ü»");
        assert.equal((await svc.whoami({})).subprotocol, client.subprotocol);
        await assert.rejects(svc.fail({ code: 5, message: "nope" }), (err) => {
          assert.ok(err instanceof ProtowsError);
          assert.equal(err.code, "not_found");
          assert.equal(err.rawMessage, "nope");
          return true;
        });
        const got: CountResponse[] = [];
        for await (const m of svc.count({ count: 3 })) got.push(m);
        assert.deepEqual(got.map((m) => m.n), [1, 2, 3]);
      } finally {
        client.close();
      }
    });

    test("a method the server lacks: the error names it, by name in both codecs", async () => {
      // x.v1.S is not served: in the binary codec the server only sees the
      // method's id, and the client adds the name.
      const client = new Client({ url: server.url, codec, WebSocket: WS });
      try {
        const svc = createClient(service(false), client) as unknown as {
          constructor$(req: { text: string }): Promise<unknown>;
          watch(req: { text: string }): AsyncIterable<unknown>;
        };
        await assert.rejects(svc.constructor$({ text: "a" }), (err) => {
          assert.ok(err instanceof ProtowsError, String(err));
          assert.equal(err.code, "unimplemented");
          assert.equal(err.method, "/x.v1.S/Constructor");
          assert.equal(err.message, `protows: /x.v1.S/Constructor: unimplemented: ${err.rawMessage}`);
          assert.equal(
            err.rawMessage,
            codec === "proto" ? `unknown method with id 0x${methodId("/x.v1.S/Constructor").toString(16).padStart(8, "0")}` : "unknown method /x.v1.S/Constructor",
          );
          return true;
        });
        await assert.rejects(
          (async () => {
            for await (const _ of svc.watch({ text: "b" })) assert.fail("no message can come");
          })(),
          (err) => {
            assert.ok(err instanceof ProtowsError, String(err));
            assert.equal(err.code, "unimplemented");
            assert.equal(err.method, "/x.v1.S/Watch");
            assert.ok(err.message.startsWith("protows: /x.v1.S/Watch: unimplemented: unknown method"), err.message);
            return true;
          },
        );
      } finally {
        client.close();
      }
    });

    test("a client stream and a bidirectional call through the descriptor", async () => {
      const client = new Client({ url: server.url, codec, WebSocket: WS });
      try {
        const svc: ServiceClient<typeof TestService> = createClient(TestService, client);
        // @ts-expect-error: SumRequest has no field "text"
        void (() => svc.sum([{ text: "x" }]));
        const sum = await svc.sum((function* () {
          for (let n = 1; n <= 40; n++) yield { n: BigInt(n) };
        })());
        assert.equal(sum.sum, 820n);
        assert.equal(sum.count, 40);
        const bidi = svc.echoStream();
        await bidi.send({ text: "a", repeat: 2 });
        await bidi.send({ text: "b" });
        await bidi.closeSend();
        const echoes: string[] = [];
        for await (const m of bidi) echoes.push(`${m.n}:${m.text}`);
        assert.deepEqual(echoes, ["1:a", "2:a", "3:b"]);
      } finally {
        client.close();
      }
    });

    test("an idempotent method is retried after the connection is lost; another fails with ConnectionLostError", async () => {
      // The proxy swallows the traffic of the first connection: the two
      // calls go out and no reply comes back, until the heartbeat gives up
      // on the link (4002) and the client connects again.
      const proxy = await BlackholeProxy.start(server.addr);
      const client = new Client({
        url: `ws://${proxy.addr}/ws`,
        codec,
        WebSocket: WS,
        backoff: { initialMs: 50, maxMs: 500 },
        heartbeat: { idleMs: 150, timeoutMs: 250 },
      });
      try {
        const svc = createClient(TestService, client);
        const first = await svc.whoami({});
        proxy.freezeExisting();
        const echo = svc.echo({ text: "again" }, { timeoutMs: 5000 }); // NO_SIDE_EFFECTS
        const whoami = svc.whoami({}, { timeoutMs: 5000 }).catch((e: unknown) => e); // no idempotency level
        assert.equal((await echo).text, "again");
        const err = await whoami;
        assert.ok(err instanceof ProtowsError, `whoami failed: ${String(err)}`);
        assert.equal(err.code, "unavailable");
        assert.equal(err.method, "/protows.test.v1.TestService/Whoami");
        assert.ok(err.cause instanceof ConnectionLostError, `cause: ${String(err.cause)}`);
        assert.equal(err.cause.closeCode, 4002);
        // The retry went over a new connection.
        assert.notEqual((await svc.whoami({})).connectionId, first.connectionId);
      } finally {
        client.close();
        await proxy.stop();
      }
    });
  });
}
