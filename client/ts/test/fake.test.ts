// Faults the Go test server cannot be told to produce, against a small fake
// server: a 4008 slow-consumer close mid-stream, a server PING, and a
// rejected token (4501) that must not turn into a retry storm.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import {
  Client,
  ProtowsError,
  type StateChange,
  type StreamMessageInfo,
  type WebSocketConstructor,
} from "../src/index.js";
import { Kind, methodId, type WireEnvelope } from "../src/protocol.js";
import { TestService } from "../../../gen/ts/protows/test/v1/test_pb.js";
import { startFake, type FakeServer } from "./fakeserver.js";
import { waitFor } from "./util.js";

const WS = WebSocket as unknown as WebSocketConstructor;

test("a client without a WebSocket constructor says so", () => {
  // Node 20 has no global WebSocket (without --experimental-websocket).
  if ((globalThis as { WebSocket?: unknown }).WebSocket === undefined) {
    assert.throws(() => new Client({ url: "ws://127.0.0.1:1/ws" }), /pass options.WebSocket/);
  } else {
    const c = new Client({ url: "ws://127.0.0.1:1/ws" });
    c.close();
    assert.equal(c.state, "closed");
  }
});

for (const codec of ["proto", "json"] as const) {
  describe(`fake server, ${codec}`, () => {
    let fake: FakeServer;
    before(async () => {
      fake = await startFake();
    });
    after(() => fake.stop());

    test("4008 mid-stream: reconnect and resubscribe", async () => {
      const states: StateChange[] = [];
      const client = new Client({ url: fake.url, codec, WebSocket: WS, backoff: { initialMs: 20 }, onStateChange: (s) => states.push(s) });
      try {
        const seen: number[] = [];
        let closed = false;
        for await (const m of client.serverStream(TestService.method.count, {})) {
          seen.push(m.n);
          if (seen.length === 3 && !closed) {
            closed = true;
            fake.closeAll(4008, "slow consumer");
          }
          if (seen.length === 6) break;
        }
        // The stream went on after the reconnect, from the new stream's 1.
        assert.deepEqual(seen.slice(0, 3), [1, 2, 3]);
        assert.equal(seen[3], 1);
        const r = states.find((s) => s.state === "reconnecting");
        assert.equal(r?.closeCode, 4008);
        assert.equal(client.state, "connected");
        assert.deepEqual(states.slice(0, 2).map((s) => s.state), ["connecting", "connected"]);
        const methodKey = codec === "proto" ? "methodId" : "method";
        const requests = fake.received.filter((e) => e.kind === Kind.REQUEST && e[methodKey] !== undefined);
        assert.ok(requests.length >= 2, "the stream was requested again");
        // Breaking out of the loop cancelled the stream on the server.
        await waitFor(() => fake.received.some((e) => e.kind === Kind.CANCEL));
      } finally {
        client.close();
      }
    });

    test("sends request metadata and names methods as the codec says", async () => {
      const client = new Client({ url: fake.url, codec, WebSocket: WS });
      try {
        fake.received.length = 0;
        await client.unary(TestService.method.echo, { text: "m" }, { metadata: { "x-trace": "abc", "accept-language": "fr" } });
        const req = fake.received.find((e) => e.kind === Kind.REQUEST)!;
        assert.deepEqual(req.metadata, { "accept-language": "fr", "x-trace": "abc" });
        assert.equal(req.timeoutMs, undefined, "no timeout, no timeoutMs");
        fake.received.length = 0;
        await client.unary(TestService.method.echo, { text: "t" }, { timeoutMs: 5000 });
        const timed = fake.received.find((e) => e.kind === Kind.REQUEST)!;
        assert.ok(timed.timeoutMs !== undefined && timed.timeoutMs > 4000 && timed.timeoutMs <= 5000, `timeoutMs ${timed.timeoutMs}`);
        if (codec === "proto") {
          assert.equal(req.methodId, methodId("/protows.test.v1.TestService/Echo"));
          assert.equal(req.method, undefined);
        } else {
          assert.equal(req.method, "/protows.test.v1.TestService/Echo");
          assert.equal(req.methodId, undefined);
        }
      } finally {
        client.close();
      }
    });

    test("answers a server PING with a PONG of the same id", async () => {
      const client = new Client({ url: fake.url, codec, WebSocket: WS });
      try {
        await client.unary(TestService.method.echo, { text: "x" });
        fake.received.length = 0;
        fake.broadcast([{ id: 77, kind: Kind.PING }]);
        await waitFor(() => fake.received.some((e) => e.kind === Kind.PONG && e.id === 77));
      } finally {
        client.close();
      }
    });

    test("4501 with a bad token stops without a retry storm", async () => {
      const before = fake.connections;
      let asked = 0;
      const states: StateChange[] = [];
      const client = new Client({
        url: fake.url, codec, WebSocket: WS, backoff: { initialMs: 10 },
        token: () => { asked++; return "bad"; },
        onStateChange: (s) => states.push(s),
      });
      try {
        await assert.rejects(client.unary(TestService.method.echo, { text: "x" }), (err: unknown) => {
          assert.ok(err instanceof ProtowsError);
          assert.equal(err.code, "unauthenticated");
          return true;
        });
        assert.equal(client.state, "closed");
        assert.equal(states.at(-1)?.closeCode, 4501);
        // One connection, and one more question to the token provider,
        // whose unchanged answer stopped the client.
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(fake.connections - before, 1);
        assert.equal(asked, 2);
      } finally {
        client.close();
      }
    });

    test("seq: a skip or a number going back is a gap; 0 is ignored; a re-open is a gap", async () => {
      // The first connection's stream, then the resubscribed one after a
      // 4008: its 11 follows 10 but is not comparable with it.
      fake.onCount = (call) => {
        const seqs = call.connection === firstConn ? [5, 6, 0, 7, 9, 10, 10, 4, 5] : [11, 12, 0, 14];
        call.send(seqs.map((seq, i) => call.message(i + 1, seq)));
        if (call.connection === firstConn) call.close(4008, "slow consumer");
      };
      const firstConn = fake.connections + 1;
      const client = new Client({ url: fake.url, codec, WebSocket: WS, backoff: { initialMs: 20 } });
      try {
        const got: string[] = [];
        let info: StreamMessageInfo | undefined;
        const stream = client.serverStream(TestService.method.count, {}, { onMessageInfo: (i) => (info = i) });
        for await (const m of stream) {
          got.push(`${m.n}:${info!.seq}${info!.gap ? "(gap)" : ""}`);
          info = undefined; // each message gets its own call
          if (got.length === 13) break;
        }
        assert.deepEqual(got, [
          "1:5", "2:6", "3:0", "4:7", "5:9(gap)", "6:10", "7:10", "8:4(gap)", "9:5",
          "1:11(gap)", "2:12", "3:0", "4:14(gap)",
        ]);
      } finally {
        fake.onCount = undefined;
        client.close();
      }
    });

    test("a stream the server ends with canceled or unavailable is re-opened, with a gap", async () => {
      let opens = 0;
      fake.onCount = (call) => {
        opens++;
        const end = (code?: number): WireEnvelope =>
          code === undefined ? { id: call.id, kind: Kind.STREAM_END } : { id: call.id, kind: Kind.STREAM_END, error: { code, message: "shutdown" } };
        switch (opens) {
          case 1: // a server shutting down cancels its calls
            call.send([call.message(1, 1), call.message(2, 2), end(1)]);
            break;
          case 2: // draining
            call.send([call.message(1, 3), end(14)]);
            break;
          default:
            call.send([call.message(1, 4), call.message(2, 5), end()]);
        }
      };
      const start = fake.connections;
      const client = new Client({ url: fake.url, codec, WebSocket: WS, backoff: { initialMs: 10 } });
      try {
        const got: string[] = [];
        let info: StreamMessageInfo | undefined;
        for await (const m of client.serverStream(TestService.method.count, {}, { onMessageInfo: (i) => (info = i) })) {
          got.push(`${m.n}:${info!.seq}${info!.gap ? "(gap)" : ""}`);
        }
        // The re-opened streams' numbers follow the old ones, but the
        // re-open is a gap all the same.
        assert.deepEqual(got, ["1:1", "2:2", "1:3(gap)", "1:4(gap)", "2:5"]);
        assert.equal(opens, 3);
        assert.equal(fake.connections - start, 1, "re-opened on the same connection");

        opens = 0;
        await assert.rejects(
          (async () => {
            for await (const _ of client.serverStream(TestService.method.count, {}, { resubscribe: false })) {
              // The two messages before the end.
            }
          })(),
          (err: unknown) => err instanceof ProtowsError && err.code === "canceled",
        );
      } finally {
        fake.onCount = undefined;
        client.close();
      }
    });

    test("reports REPLY metadata through onReplyMetadata", async () => {
      const client = new Client({ url: fake.url, codec, WebSocket: WS });
      try {
        const seen: Record<string, string>[] = [];
        const res = await client.unary(
          TestService.method.echo,
          { text: "md" },
          { metadata: { "x-trace": "abc", "x-b": "2" }, onReplyMetadata: (md) => seen.push(md) },
        );
        assert.equal(res.text, "md");
        await client.unary(TestService.method.echo, { text: "none" }, { onReplyMetadata: (md) => seen.push(md) });
        assert.deepEqual(seen, [{ "x-b": "2", "x-trace": "abc" }, {}]);
      } finally {
        client.close();
      }
    });

    test("4009: a new token and a reconnect at once, every time", async () => {
      const initialMs = 300;
      let asked = 0;
      for (let i = 1; i <= 4; i++) fake.goodTokens.add(`exp-${codec}-${i}`);
      const first = fake.connections;
      const closedAt: number[] = [];
      const random = Math.random;
      // The jitter at its maximum: with the backoff, the delays would
      // double (1x, 2x, 4x Initial); at once, each stays below Initial.
      Math.random = () => 0.999;
      const client = new Client({
        url: fake.url, codec, WebSocket: WS, backoff: { initialMs, maxMs: 10 * initialMs },
        token: () => `exp-${codec}-${++asked}`,
        onStateChange: (s) => {
          if (s.state === "connected" && closedAt.length < 3) {
            closedAt.push(Date.now());
            fake.closeAll(4009, "token expired");
          }
        },
      });
      try {
        await waitFor(() => fake.connections - first === 4 && client.state === "connected", 5000, "the fourth connection");
        Math.random = random;
        const res = await client.unary(TestService.method.whoami, {});
        assert.equal(res.subject, `exp-${codec}-4`);
        assert.deepEqual(fake.tokens.slice(-4), [1, 2, 3, 4].map((i) => `exp-${codec}-${i}`));
        const connectedAt = fake.connectedAt.slice(first);
        for (let i = 0; i < 3; i++) {
          const d = connectedAt[i + 1]! - closedAt[i]!;
          assert.ok(d >= initialMs * 0.9 && d < initialMs * 1.75, `reconnect ${i + 1} after ${d} ms, want about ${initialMs}`);
        }
      } finally {
        Math.random = random;
        client.close();
      }
    });

    test("4501, then a new token: reconnects once and works", async () => {
      fake.goodTokens.add("good-1");
      const before = fake.connections;
      const tokens = ["bad-1", "good-1"];
      const client = new Client({ url: fake.url, codec, WebSocket: WS, backoff: { initialMs: 10 }, token: () => tokens.shift() ?? "good-1" });
      try {
        const res = await client.unary(TestService.method.whoami, {});
        assert.equal(res.subject, "good-1");
        assert.equal(fake.connections - before, 2);
      } finally {
        client.close();
      }
    });
  });
}
