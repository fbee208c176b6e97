// The runtime against the real Go server (cmd/protows-testserver), in both
// codecs: calls, streams, cancel, errors, deadlines, server restart with
// reconnect and resubscribe, graceful shutdown (1001), a half-open link,
// token refresh and expiry (4009), a rejected token (4501).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import WebSocket from "ws";
import {
  Client,
  ConnectionLostError,
  ProtowsError,
  type ClientOptions,
  type StateChange,
  type StreamMessageInfo,
  type WebSocketConstructor,
} from "../src/index.js";
import { FailRequestSchema, TestService } from "../../../gen/ts/protows/test/v1/test_pb.js";
import { GoServer } from "./goserver.js";
import { BlackholeProxy } from "./proxy.js";
import { waitFor } from "./util.js";

const WS = WebSocket as unknown as WebSocketConstructor;

function ms(n: number) {
  return create(DurationSchema, { seconds: BigInt(Math.floor(n / 1000)), nanos: (n % 1000) * 1_000_000 });
}

function isCode(code: string, method?: string): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof ProtowsError, `not a ProtowsError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (method !== undefined) {
      // Errors the client makes up name the call's method too.
      assert.equal(err.method, method);
      assert.ok(err.message.startsWith(`protows: ${method}: ${code}`), err.message);
    }
    return true;
  };
}

const sleepName = "/protows.test.v1.TestService/Sleep";

// A client whose states are recorded, closed by the returned dispose.
function newClient(opts: Omit<ClientOptions, "WebSocket">): { client: Client; states: StateChange[] } {
  const states: StateChange[] = [];
  const client = new Client({ WebSocket: WS, backoff: { initialMs: 50, maxMs: 500 }, ...opts, onStateChange: (s) => states.push(s) });
  return { client, states };
}

for (const codec of ["proto", "json"] as const) {
  const subprotocol = codec === "proto" ? "protows.v1.proto" : "protows.v1.json";

  describe(`Go server, ${codec}`, () => {
    let server: GoServer;
    before(async () => {
      server = await GoServer.start(["-max-in-flight", "4"]);
    });
    after(() => server.stop());

    test("unary calls, metadata-free and concurrent", async () => {
      const { client } = newClient({ url: server.url, codec });
      try {
        const res = await client.unary(TestService.method.echo, { text: "héllo «protows» 🚀", padding: new Uint8Array([0, 1, 255]) });
        assert.equal(res.text, "héllo «protows» 🚀");
        assert.deepEqual([...res.padding], [0, 1, 255]);
        const who = await client.unary(TestService.method.whoami, {});
        assert.equal(who.subprotocol, subprotocol);
        assert.equal(who.subject, "");
        const many = await Promise.all([1, 2, 3, 4].map((i) => client.unary(TestService.method.echo, { text: `m${i}` })));
        assert.deepEqual(many.map((r) => r.text), ["m1", "m2", "m3", "m4"]);
        assert.equal(client.state, "connected");
        const rtt = await client.ping();
        assert.ok(rtt >= 0 && rtt < 1000, `rtt ${rtt}`);
        assert.equal(client.rttMs, rtt);
      } finally {
        client.close();
      }
    });

    test("errors carry the server's code and message", async () => {
      const { client } = newClient({ url: server.url, codec });
      try {
        await assert.rejects(client.unary(TestService.method.fail, { code: 5, message: "no room «x»" }), (err) => {
          isCode("not_found")(err);
          assert.equal((err as ProtowsError).rawMessage, "no room «x»");
          return true;
        });
        await assert.rejects(client.unary(TestService.method.fail, { code: 42, message: "odd" }), isCode("code_42"));
        // Typed details (docs/PROTOCOL.md, section 8.1).
        await assert.rejects(client.unary(TestService.method.fail, { code: 8, message: "quota", details: true }), (err) => {
          isCode("resource_exhausted")(err);
          const e = err as ProtowsError;
          assert.deepEqual(e.details.map((d) => d.type), ["google.protobuf.Duration", "protows.test.v1.FailRequest"]);
          const [delay] = e.findDetails(DurationSchema);
          assert.deepEqual([delay?.seconds, delay?.nanos], [1n, 500_000_000]);
          const [req] = e.findDetails(FailRequestSchema);
          assert.deepEqual([req?.code, req?.message, req?.details], [8, "quota", true]);
          return true;
        });
        // A timeout ends the call (the REQUEST carries the time left: fake.test.ts).
        await assert.rejects(client.unary(TestService.method.sleep, { delay: ms(5000) }, { timeoutMs: 100 }), isCode("deadline_exceeded"));
        // The server's unavailable is not a lost connection: it has no cause.
        await assert.rejects(client.unary(TestService.method.fail, { code: 14, message: "busy" }, { idempotent: true }), (err) => {
          isCode("unavailable")(err);
          assert.equal((err as ProtowsError).cause, undefined);
          return true;
        });
        await assert.rejects(client.unary(TestService.method.fail, { panic: true, message: "boom" }), isCode("internal"));
        const unknown = { ...TestService.method.echo, name: "NoSuchMethod" } as typeof TestService.method.echo;
        await assert.rejects(client.unary(unknown, {}), isCode("unimplemented"));
        // The connection survives all of that.
        assert.equal((await client.unary(TestService.method.echo, { text: "ok" })).text, "ok");
      } finally {
        client.close();
      }
    });

    test("server streams, ending cleanly and with an error", async () => {
      const { client } = newClient({ url: server.url, codec });
      try {
        const got: number[] = [];
        for await (const m of client.serverStream(TestService.method.count, { count: 5 })) got.push(m.n);
        assert.deepEqual(got, [1, 2, 3, 4, 5]);
        const partial: number[] = [];
        await assert.rejects(
          (async () => {
            for await (const m of client.serverStream(TestService.method.count, { count: 2, failCode: 9 })) partial.push(m.n);
          })(),
          isCode("failed_precondition"),
        );
        assert.deepEqual(partial, [1, 2]);
      } finally {
        client.close();
      }
    });

    test("AbortSignal and break cancel calls on the server", async () => {
      // The server allows 4 calls in flight: if cancelled calls stayed in
      // flight there, the last calls would fail with resource_exhausted.
      const { client } = newClient({ url: server.url, codec });
      try {
        for (let i = 0; i < 5; i++) {
          const ac = new AbortController();
          const p = client.unary(TestService.method.sleep, { delay: ms(30_000) }, { signal: ac.signal });
          setTimeout(() => ac.abort(), 20);
          const start = Date.now();
          await assert.rejects(p, isCode("canceled", sleepName));
          assert.ok(Date.now() - start < 1000);
        }
        for (let i = 0; i < 5; i++) {
          let n = 0;
          for await (const m of client.serverStream(TestService.method.count, { interval: ms(5) })) {
            n = m.n;
            if (n === 3) break;
          }
          assert.equal(n, 3);
        }
        const ac = new AbortController();
        await assert.rejects(
          (async () => {
            for await (const m of client.serverStream(TestService.method.count, { interval: ms(5) }, { signal: ac.signal })) {
              if (m.n === 2) ac.abort();
            }
          })(),
          isCode("canceled"),
        );
        await waitFor(() => true);
        const all = await Promise.all([1, 2, 3, 4].map(() => client.unary(TestService.method.sleep, { delay: ms(10) })));
        assert.equal(all.length, 4);
        // An already aborted signal fails at once.
        await assert.rejects(client.unary(TestService.method.echo, {}, { signal: AbortSignal.abort() }), isCode("canceled"));
      } finally {
        client.close();
      }
    });

    test("a reply slower than the deadline fails with deadline_exceeded", async () => {
      const { client } = newClient({ url: server.url, codec, requestTimeoutMs: 150 });
      try {
        const start = Date.now();
        await assert.rejects(client.unary(TestService.method.sleep, { delay: ms(5_000) }), isCode("deadline_exceeded", sleepName));
        assert.ok(Date.now() - start < 1500);
        await assert.rejects(client.unary(TestService.method.sleep, { delay: ms(5_000) }, { timeoutMs: 50 }), isCode("deadline_exceeded"));
        const ok = await client.unary(TestService.method.sleep, { delay: ms(10) });
        assert.ok(ok.slept !== undefined);
      } finally {
        client.close();
      }
    });

    test("close() fails pending calls with canceled and stops", async () => {
      const { client, states } = newClient({ url: server.url, codec });
      const p = client.unary(TestService.method.sleep, { delay: ms(5_000) });
      await waitFor(() => client.state === "connected");
      client.close();
      await assert.rejects(p, isCode("canceled", sleepName));
      await assert.rejects(client.unary(TestService.method.echo, {}), isCode("canceled", "/protows.test.v1.TestService/Echo"));
      assert.equal(states.at(-1)?.state, "closed");
    });
  });

  describe(`Go server restarts, ${codec}`, () => {
    test("server killed mid-stream: in-flight calls fail, idempotent ones retry, the stream resubscribes", async () => {
      const server = await GoServer.start();
      const { client, states } = newClient({ url: server.url, codec });
      try {
        const seen: number[] = [];
        const infos: StreamMessageInfo[] = [];
        let restarted: Promise<void> | undefined;
        let inFlight: Promise<unknown> | undefined;
        let idempotent: Promise<unknown> | undefined;
        const stream = client.serverStream(TestService.method.count, { interval: ms(20) }, { onMessageInfo: (i) => infos.push(i) });
        for await (const m of stream) {
          seen.push(m.n);
          if (seen.length === 3) {
            // Outcomes are caught now: a rejection nobody listens to yet fails the test run.
            inFlight = client.unary(TestService.method.sleep, { delay: ms(2_000) }).catch((e: unknown) => e);
            idempotent = client.unary(TestService.method.sleep, { delay: ms(300) }, { idempotent: true }).catch((e: unknown) => e);
            await new Promise((r) => setTimeout(r, 50)); // the calls reach the server
            restarted = server.restart("SIGKILL");
          }
          if (seen.length > 3 && m.n === 3) break; // the resubscribed stream's third message
        }
        await restarted;
        // Messages queued before the kill come first, then the new stream's
        // from 1: [1, 2, 3, ..., k, 1, 2, 3].
        const reset = seen.lastIndexOf(1);
        assert.ok(reset >= 3, `the stream restarted from 1: ${seen}`);
        assert.deepEqual(seen.slice(0, reset), Array.from({ length: reset }, (_, i) => i + 1));
        assert.deepEqual(seen.slice(reset), [1, 2, 3]);
        // Count's messages are not room messages (seq 0); the re-open, and
        // only it, is a gap.
        assert.equal(infos.length, seen.length);
        assert.ok(infos.every((i) => i.seq === 0));
        assert.deepEqual(
          infos.map((i, k) => (i.gap ? k : -1)).filter((k) => k >= 0),
          [reset],
        );
        const lost = await inFlight!;
        isCode("unavailable", sleepName)(lost);
        // The cause says the outcome is unknown: the connection was lost.
        const cause = (lost as ProtowsError).cause;
        assert.ok(cause instanceof ConnectionLostError, `cause: ${String(cause)}`);
        assert.equal(cause.closeCode, 1006);
        const retried = await idempotent!;
        assert.ok(!(retried instanceof Error), `the idempotent call was retried: ${String(retried)}`);
        const r = states.find((s) => s.state === "reconnecting");
        assert.equal(r?.closeCode, 1006);
        assert.equal(client.state, "connected");
      } finally {
        client.close();
        await server.stop();
      }
    });

    test("graceful shutdown (1001): reconnect at once when the server is back", async () => {
      const server = await GoServer.start();
      const { client, states } = newClient({ url: server.url, codec });
      try {
        await client.unary(TestService.method.echo, { text: "before" });
        const code = await server.stop("SIGTERM");
        assert.equal(code, 0);
        await waitFor(() => states.some((s) => s.state === "reconnecting"));
        const r = states.find((s) => s.state === "reconnecting")!;
        assert.equal(r.closeCode, 1001);
        assert.ok(r.delayMs! < 50, `1001 reconnects at once, with jitter under the initial backoff: ${r.delayMs}`);
        // A call made while the server is down waits for it.
        const pending = client.unary(TestService.method.echo, { text: "after" }, { timeoutMs: 10_000 });
        await new Promise((res) => setTimeout(res, 200));
        await server.restart();
        assert.equal((await pending).text, "after");
      } finally {
        client.close();
        await server.stop();
      }
    });

    test("a stream outrunning a one-envelope send queue waits instead of closing with 4008", async () => {
      // Since issue 12 the server's answers to the client's own calls wait
      // for room in the send queue (docs/PROTOCOL.md section 4.7): only room
      // broadcasts close a slow consumer with 4008 (fake.test.ts covers the
      // client's reconnect after it). A send queue of one envelope used to
      // overflow at once with an unpaced stream.
      const server = await GoServer.start(["-send-queue", "1"]);
      const { client, states } = newClient({ url: server.url, codec });
      try {
        let n = 0;
        for await (const m of client.serverStream(TestService.method.count, { count: 3000 })) {
          assert.equal(m.n, ++n);
        }
        assert.equal(n, 3000);
        assert.ok(!states.some((s) => s.state === "reconnecting"), `states: ${JSON.stringify(states)}`);
      } finally {
        client.close();
        await server.stop("SIGKILL");
      }
    });

    test("half-open link: the heartbeat notices and reconnects", async () => {
      const server = await GoServer.start();
      const proxy = await BlackholeProxy.start(server.addr);
      const { client, states } = newClient({ url: `ws://${proxy.addr}/ws`, codec, heartbeat: { idleMs: 150, timeoutMs: 250 } });
      try {
        const first = await client.unary(TestService.method.whoami, {});
        proxy.freezeExisting();
        const start = Date.now();
        await waitFor(() => states.some((s) => s.state === "reconnecting"), 3000, "heartbeat timeout");
        const detected = Date.now() - start;
        assert.ok(detected < 1000, `detected after ${detected} ms`);
        assert.equal(states.find((s) => s.state === "reconnecting")!.closeCode, 4002);
        const second = await client.unary(TestService.method.whoami, {}, { timeoutMs: 3000 });
        assert.notEqual(second.connectionId, first.connectionId);
        assert.ok((await client.ping()) >= 0);
      } finally {
        client.close();
        await proxy.stop();
        await server.stop("SIGKILL");
      }
    });
  });

  describe(`Go server with JWT auth, ${codec}`, () => {
    let server: GoServer;
    before(async () => {
      server = await GoServer.start(["-auth", "jwt"]);
    });
    after(() => server.stop());

    test("authenticates in band and refreshes the token before it expires", async () => {
      let asked = 0;
      const { client, states } = newClient({
        url: server.url,
        codec,
        token: () => {
          asked++;
          return server.token("alice", "2s");
        },
      });
      try {
        const first = await client.unary(TestService.method.whoami, {});
        assert.equal(first.subject, "alice");
        await waitFor(() => asked >= 2, 4000, "a refresh");
        // Past the first token's expiry: the same connection still works.
        await new Promise((r) => setTimeout(r, 1200));
        const later = await client.unary(TestService.method.whoami, {});
        assert.equal(later.connectionId, first.connectionId);
        assert.ok(!states.some((s) => s.state === "reconnecting"), JSON.stringify(states));
      } finally {
        client.close();
      }
    });

    test("an expired token (4009) brings a new token and a reconnect", async () => {
      // The refresh offers another subject's token, which the server
      // refuses (permission_denied); the credential then expires.
      const tokens = [() => server.token("bob", "2s"), () => server.token("mallory", "1h")];
      const { client, states } = newClient({ url: server.url, codec, token: () => (tokens.shift() ?? (() => server.token("bob", "1h")))() });
      try {
        const first = await client.unary(TestService.method.whoami, {});
        assert.equal(first.subject, "bob");
        await waitFor(() => states.some((s) => s.state === "reconnecting"), 6000, "the 4009 close");
        assert.equal(states.find((s) => s.state === "reconnecting")!.closeCode, 4009);
        const second = await client.unary(TestService.method.whoami, {}, { timeoutMs: 3000 });
        assert.equal(second.subject, "bob");
        assert.notEqual(second.connectionId, first.connectionId);
      } finally {
        client.close();
      }
    });

    test("a bad token (4501) stops the client: no retry storm", async () => {
      let asked = 0;
      const { client, states } = newClient({ url: server.url, codec, token: () => (asked++, "not-a-jwt") });
      try {
        await assert.rejects(client.unary(TestService.method.whoami, {}), isCode("unauthenticated"));
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(client.state, "closed");
        assert.equal(states.at(-1)?.closeCode, 4501);
        assert.equal(asked, 2); // the connection's token, then the unchanged one that stopped it
        assert.equal(states.filter((s) => s.state === "reconnecting").length, 0);
      } finally {
        client.close();
      }
    });
  });
}
