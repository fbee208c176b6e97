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
  type StreamRecovery,
  type WebSocketConstructor,
} from "../src/index.js";
import { Kind, Recovery, methodId, type WireEnvelope, type WireResume } from "../src/protocol.js";
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

    test("resume: every stream REQUEST carries it; a recovered re-open is no gap; a lost one is", async () => {
      // Each connection's stream of a room with history: the position,
      // then messages with the room's offsets as seq, then a 4008.
      const resumes: WireResume[] = [];
      fake.onCount = (call) => {
        resumes.push(call.request.resume!);
        const pos = (epoch: string, offset: number, recovery: Recovery, latest: number): WireEnvelope =>
          call.position({ epoch, offset, recovery, latest });
        switch (call.connection - first) {
          case 1: // a first join with history 2: 11 and 12 replayed, 13 live
            call.send([pos("e1", 10, Recovery.UNSPECIFIED, 12), call.message(1, 11), call.message(2, 12), call.message(3, 13)]);
            call.close(4008, "slow consumer");
            break;
          case 2: // everything after 13 recovered: 14 and 15 replayed
            // A message outside the history (seq 0) may come before the
            // position: it does not take the re-open's gap.
            call.send([call.message(100, 0), pos("e1", 13, Recovery.RECOVERED, 15), call.message(4, 14), call.message(5, 15), call.message(6, 16)]);
            call.close(4008, "slow consumer");
            break;
          case 3: // the server restarted: a new epoch, its latest 2 messages
            call.send([call.message(101, 0), pos("e2", 3, Recovery.EPOCH_CHANGED, 5), call.message(7, 4), call.message(8, 5)]);
            // The history was deleted and made anew while the stream was open.
            call.send([pos("e3", 0, Recovery.EPOCH_CHANGED, 0), call.message(9, 1)]);
            call.close(4008, "slow consumer");
            break;
          case 4: // too old; nothing replayed, a live message
            call.send([pos("e3", 9, Recovery.TOO_OLD, 9), call.message(10, 10)]);
            call.close(4008, "slow consumer");
            break;
          default: // recovered with nothing missed, then an outcome this runtime does not know
            call.send([pos("e3", 10, Recovery.RECOVERED, 10), call.message(11, 11)]);
            if (codec === "proto") call.send([pos("e3", 11, 9 as Recovery, 11), call.message(12, 12)]);
        }
      };
      const first = fake.connections;
      const client = new Client({ url: fake.url, codec, WebSocket: WS, backoff: { initialMs: 10 } });
      try {
        const got: string[] = [];
        const recoveries: StreamRecovery[] = [];
        let info: StreamMessageInfo | undefined;
        const stream = client.serverStream(TestService.method.count, {}, {
          history: 2,
          onMessageInfo: (i) => (info = i),
          onRecovery: (r) => {
            recoveries.push(r);
            got.push(`[${r.recovery}${r.lost ? " lost" : ""} ${r.replayed}]`);
          },
        });
        const want = codec === "proto" ? 12 : 11;
        for await (const m of stream) {
          got.push(`${m.n}:${info!.seq}${info!.gap ? "(gap)" : ""}`);
          if (m.n === want) break;
        }
        assert.deepEqual(got, [
          "[fresh 2]", "1:11", "2:12", "3:13",
          "100:0", "[recovered 2]", "4:14", "5:15", "6:16",
          "101:0", "[epoch_changed lost 2]", "7:4(gap)", "8:5",
          "[epoch_changed lost 0]", "9:1(gap)",
          "[too_old lost 0]", "10:10(gap)",
          "[recovered 0]", "11:11",
          ...(codec === "proto" ? ["[unknown lost 0]", "12:12(gap)"] : []),
        ]);
        assert.deepEqual(recoveries[1], { recovery: "recovered", lost: false, replayed: 2, epoch: "e1", offset: 13 });
        // The first REQUEST has no position; each re-open sends the last
        // offset received in the last epoch, and the same history.
        assert.deepEqual(resumes.slice(0, 5), [
          { epoch: "", offset: 0, history: 2 },
          { epoch: "e1", offset: 13, history: 2 },
          { epoch: "e1", offset: 16, history: 2 },
          { epoch: "e3", offset: 1, history: 2 },
          { epoch: "e3", offset: 10, history: 2 },
        ]);
      } finally {
        fake.onCount = undefined;
        client.close();
      }
    });

    test("resume: a server without STREAM_POSITION keeps today's behaviour: a re-open is a gap", async () => {
      const resumes: (WireResume | undefined)[] = [];
      fake.onCount = (call) => {
        resumes.push(call.request.resume);
        if (call.connection === first + 1) {
          call.send([call.message(1, 5), call.message(2, 6)]);
          call.close(4008, "slow consumer");
        } else {
          call.send([call.message(3, 7), call.message(4, 8)]);
        }
      };
      const first = fake.connections;
      const client = new Client({ url: fake.url, codec, WebSocket: WS, backoff: { initialMs: 10 } });
      try {
        const got: string[] = [];
        let info: StreamMessageInfo | undefined;
        let recoveries = 0;
        // A negative history asks for none (resume.history is a uint32).
        const stream = client.serverStream(TestService.method.count, {}, { history: -3, onMessageInfo: (i) => (info = i), onRecovery: () => recoveries++ });
        for await (const m of stream) {
          got.push(`${m.n}:${info!.seq}${info!.gap ? "(gap)" : ""}`);
          if (m.n === 4) break;
        }
        // 7 follows 6, but the numbers of a re-opened stream without a
        // position are not comparable.
        assert.deepEqual(got, ["1:5", "2:6", "3:7(gap)", "4:8"]);
        assert.equal(recoveries, 0);
        // resume is present (empty) on both, without a position.
        assert.deepEqual(resumes, [
          { epoch: "", offset: 0, history: 0 },
          { epoch: "", offset: 0, history: 0 },
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
