// Issue 12 against the real Go server (cmd/protows-testserver), in both
// codecs: client streams (TestService.Sum) and bidirectional calls
// (TestService.EchoStream) with their errors, early ends, cancel, timeout
// and the end of the connection (never resumed); and flow control of a
// server stream: a slow consumer of 100,000 messages gets all of them while
// the client never holds more than its window.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import WebSocket from "ws";
import { Client, ProtowsError, type WebSocketConstructor, type WebSocketLike } from "../src/index.js";
import { jsonCodec, protoCodec, type Codec } from "../src/codec.js";
import { Kind } from "../src/gen/protows/v1/protows_pb.js";
import { TestService } from "../../../gen/ts/protows/test/v1/test_pb.js";
import { GoServer } from "./goserver.js";

const WS = WebSocket as unknown as WebSocketConstructor;

function ms(n: number) {
  return create(DurationSchema, { seconds: BigInt(Math.floor(n / 1000)), nanos: (n % 1000) * 1_000_000 });
}

function isCode(code: string): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof ProtowsError, `not a ProtowsError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  };
}

// Traffic counts what the client's sockets carry: the STREAM_MESSAGEs
// received and the envelopes sent, by kind.
class Traffic {
  received = 0;
  readonly sent: { kind: Kind; credit?: number }[] = [];
  constructor(readonly codec: Codec) {}

  // ws is a WebSocket constructor whose sockets report to this.
  get ws(): WebSocketConstructor {
    const traffic = this;
    return class extends (WebSocket as unknown as new (url: string, protocols?: string | string[]) => WebSocketLike) {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        const self = this as unknown as { addEventListener(t: string, f: (ev: { data: unknown }) => void): void };
        self.addEventListener("message", (ev) => {
          const data = ev.data;
          const frame = typeof data === "string" ? data : new Uint8Array(data as ArrayBuffer);
          for (const e of traffic.codec.decodeFrame(frame)) {
            if (e.kind === Kind.STREAM_MESSAGE) traffic.received++;
          }
        });
      }
      override send(data: string | ArrayBufferView | ArrayBufferLike): void {
        const frame = typeof data === "string" ? data : new Uint8Array(data as ArrayBuffer);
        for (const e of traffic.codec.decodeFrame(frame)) traffic.sent.push({ kind: e.kind, credit: e.credit });
        super.send(data);
      }
    } as unknown as WebSocketConstructor;
  }
}

for (const codec of ["proto", "json"] as const) {
  describe(`client streams and bidirectional calls on the Go server, ${codec}`, () => {
    let server: GoServer;
    before(async () => {
      server = await GoServer.start(["-max-in-flight", "4"]);
    });
    after(() => server.stop());

    test("client stream: the sum of many messages, an early reply, an error, requests that throw", async () => {
      const client = new Client({ url: server.url, codec, WebSocket: WS });
      try {
        // 200 messages: far more than the server's window of 16, so the
        // client waited for credit many times.
        let produced = 0;
        const res = await client.clientStream(
          TestService.method.sum,
          (async function* () {
            for (let n = 1; n <= 200; n++) {
              produced++;
              yield { n: BigInt(n) };
            }
          })(),
        );
        assert.equal(res.sum, 20100n);
        assert.equal(res.count, 200);
        assert.equal(produced, 200);
        // An empty stream is a valid call.
        const empty = await client.clientStream(TestService.method.sum, []);
        assert.equal(empty.count, 0);
        // The handler replies early: the client stops taking requests.
        let taken = 0;
        const early = await client.clientStream(
          TestService.method.sum,
          (async function* () {
            for (let n = 1; ; n++) {
              taken++;
              yield { n: 1n, stop: n === 3 };
              await new Promise((r) => setTimeout(r, 2));
            }
          })(),
        );
        assert.equal(early.count, 3);
        assert.equal(early.sum, 3n);
        assert.ok(taken < 100, `the requests were abandoned after the reply: ${taken}`);
        await assert.rejects(client.clientStream(TestService.method.sum, [{ n: 1n }, { failCode: 5 }, { n: 2n }]), isCode("not_found"));
        // The requests throw: the call is cancelled and the error is the caller's.
        const boom = new Error("boom");
        await assert.rejects(
          client.clientStream(
            TestService.method.sum,
            (async function* () {
              yield { n: 1n };
              throw boom;
            })(),
          ),
          (err) => err === boom,
        );
        // None of these calls stayed in flight (the server allows 4).
        const again = await Promise.all([1, 2, 3, 4].map((i) => client.clientStream(TestService.method.sum, [{ n: BigInt(i) }])));
        assert.deepEqual(again.map((r) => r.sum), [1n, 2n, 3n, 4n]);
      } finally {
        client.close();
      }
    });

    test("client stream: cancel and timeout while the producer is stuck", async () => {
      const client = new Client({ url: server.url, codec, WebSocket: WS });
      try {
        const stuck = async function* () {
          yield { n: 1n };
          await new Promise(() => {}); // never produces again
        };
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 50);
        await assert.rejects(client.clientStream(TestService.method.sum, stuck(), { signal: ac.signal }), isCode("canceled"));
        const start = Date.now();
        await assert.rejects(client.clientStream(TestService.method.sum, stuck(), { timeoutMs: 80 }), isCode("deadline_exceeded"));
        assert.ok(Date.now() - start < 1500);
        await assert.rejects(client.clientStream(TestService.method.sum, [{ n: 1n }], { signal: AbortSignal.abort() }), isCode("canceled"));
        const ok = await Promise.all([1, 2, 3, 4].map(() => client.clientStream(TestService.method.sum, [{ n: 2n }])));
        assert.equal(ok.length, 4);
      } finally {
        client.close();
      }
    });

    test("bidi: interleaved sends and echoes, half-close, errors", async () => {
      const client = new Client({ url: server.url, codec, WebSocket: WS });
      try {
        const bidi = client.bidiStream(TestService.method.echoStream);
        const it = bidi[Symbol.asyncIterator]();
        // Ping-pong: each echo arrives before the next send.
        for (let i = 1; i <= 5; i++) {
          await bidi.send({ text: `m${i}` });
          const r = await it.next();
          assert.equal(r.done, false);
          assert.equal(r.value!.text, `m${i}`);
          assert.equal(r.value!.n, i);
        }
        // Many echoes for one message, beyond the client's window (256):
        // the client grants credit as it reads.
        await bidi.send({ text: "many", repeat: 600 });
        await bidi.closeSend();
        await assert.rejects(bidi.send({ text: "late" }), isCode("failed_precondition"));
        let n = 0;
        for (;;) {
          const r = await it.next();
          if (r.done === true) break;
          n++;
          assert.equal(r.value.text, "many");
        }
        assert.equal(n, 600);
        assert.throws(() => bidi[Symbol.asyncIterator](), TypeError);

        const failing = client.bidiStream(TestService.method.echoStream);
        await failing.send({ text: "x" });
        await failing.send({ text: "y", failCode: 7 });
        const got: string[] = [];
        await assert.rejects(
          (async () => {
            for await (const m of failing) got.push(m.text);
          })(),
          isCode("permission_denied"),
        );
        assert.deepEqual(got, ["x"]);
        await assert.rejects(failing.send({ text: "z" }), isCode("permission_denied"));
      } finally {
        client.close();
      }
    });

    test("bidi: close, break, signal and timeout cancel the call on the server", async () => {
      const client = new Client({ url: server.url, codec, WebSocket: WS });
      try {
        for (let i = 0; i < 5; i++) {
          // Each of these would keep a call in flight (the server allows 4)
          // if the cancel did not reach the server.
          const a = client.bidiStream(TestService.method.echoStream);
          await a.send({ text: "a" });
          a.close();
          await assert.rejects(a.send({ text: "b" }), isCode("canceled"));

          const b = client.bidiStream(TestService.method.echoStream);
          await b.send({ text: "b", repeat: 3 });
          let seen = 0;
          for await (const _ of b) {
            if (++seen === 2) break;
          }
          assert.equal(seen, 2);
          await assert.rejects(b.send({ text: "b" }), isCode("canceled"));

          const ac = new AbortController();
          const c = client.bidiStream(TestService.method.echoStream, { signal: ac.signal });
          await c.send({ text: "c" });
          setTimeout(() => ac.abort(), 20);
          await assert.rejects(
            (async () => {
              for await (const _ of c);
            })(),
            isCode("canceled"),
          );
        }
        const d = client.bidiStream(TestService.method.echoStream, { timeoutMs: 60 });
        await assert.rejects(
          (async () => {
            for await (const _ of d);
          })(),
          isCode("deadline_exceeded"),
        );
        const e = client.bidiStream(TestService.method.echoStream);
        await e.send({ text: "still fine" });
        await e.closeSend();
        const texts: string[] = [];
        for await (const m of e) texts.push(m.text);
        assert.deepEqual(texts, ["still fine"]);
      } finally {
        client.close();
      }
    });

    test("a slow consumer of 100,000 stream messages gets them all and never holds more than its window", async () => {
      const traffic = new Traffic(codec === "proto" ? protoCodec() : jsonCodec());
      const client = new Client({ url: server.url, codec, WebSocket: traffic.ws });
      try {
        let taken = 0;
        let maxHeld = 0;
        for await (const m of client.serverStream(TestService.method.count, { count: 100_000 })) {
          taken++;
          assert.equal(m.n, taken);
          maxHeld = Math.max(maxHeld, traffic.received - taken);
          // Slow: a pause now and then, long enough for a server that
          // ignored the window to send far more than 256 messages.
          if (taken % 2_000 === 0) await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal(taken, 100_000);
        assert.ok(maxHeld <= 256, `the client held ${maxHeld} messages`);
        assert.ok(maxHeld >= 100, `the window was used: ${maxHeld}`);
        const req = traffic.sent.find((e) => e.kind === Kind.REQUEST);
        assert.equal(req?.credit, 256);
        const credits = traffic.sent.filter((e) => e.kind === Kind.CREDIT).map((e) => e.credit!);
        assert.ok(credits.length > 0 && credits.every((c) => c >= 128), `credits in batches: ${credits.slice(0, 5)}`);
        assert.ok(credits.length <= 100_000 / 128 + 1, `${credits.length} credits`);
      } finally {
        client.close();
      }
    });
  });

  describe(`client streams and bidirectional calls are not resumed, ${codec}`, () => {
    test("the server is killed mid-call: both end with unavailable, the next call works", async () => {
      const server = await GoServer.start();
      const client = new Client({ url: server.url, codec, WebSocket: WS, backoff: { initialMs: 50, maxMs: 500 } });
      try {
        const bidi = client.bidiStream(TestService.method.echoStream);
        await bidi.send({ text: "before" });
        const it = bidi[Symbol.asyncIterator]();
        assert.equal((await it.next()).value?.text, "before");
        let sent = 0;
        let restarted: Promise<void> | undefined;
        const upload = client.clientStream(
          TestService.method.sum,
          (async function* () {
            for (;;) {
              sent++;
              if (sent === 5) restarted = server.restart("SIGKILL");
              yield { n: 1n, delay: ms(5) };
            }
          })(),
        );
        await assert.rejects(upload, isCode("unavailable"));
        await assert.rejects(it.next(), isCode("unavailable"));
        await assert.rejects(bidi.send({ text: "after" }), isCode("unavailable"));
        await restarted;
        const res = await client.clientStream(TestService.method.sum, [{ n: 4n }, { n: 5n }]);
        assert.equal(res.sum, 9n);
      } finally {
        client.close();
        await server.stop();
      }
    });
  });
}
