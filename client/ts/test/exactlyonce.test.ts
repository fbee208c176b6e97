// Exactly-once calls (CallOptions exactlyOnce, idempotencyKey; docs/
// PROTOCOL.md section 3.7) against the real Go server in both codecs: a
// reply lost on the way is fetched again with the same key and the handler
// ran once (the test server counts Echo runs at /runs); calls made while
// the server is away are sent when it is back; a deadline drops the call;
// a second client on the same storage (a page after a reload) sends again
// what the first had no answer for and reports the answer. Against the
// fake server: the order of sends, and the keys, on two connections.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { Client, ProtowsError, type ClientOptions, type OutboxStorage, type RecoveredCall, type StoredCall, type WebSocketConstructor } from "../src/index.js";
import { Kind } from "../src/gen/protows/v1/protows_pb.js";
import { EchoRequestSchema, EchoResponseSchema, TestService } from "../../../gen/ts/protows/test/v1/test_pb.js";
import { startFake, type FakeServer } from "./fakeserver.js";
import { GoServer } from "./goserver.js";
import { BlackholeProxy } from "./proxy.js";
import { waitFor } from "./util.js";

const WS = WebSocket as unknown as WebSocketConstructor;

function newClient(opts: Omit<ClientOptions, "WebSocket">): Client {
  return new Client({ WebSocket: WS, backoff: { initialMs: 50, maxMs: 200 }, heartbeat: false, ...opts });
}

async function runsOf(server: GoServer, text: string): Promise<number> {
  const res = await fetch(`${server.httpUrl}/runs?text=${encodeURIComponent(text)}`);
  assert.equal(res.status, 200);
  return Number(await res.text());
}

// A storage in memory that records what the outbox did with it.
class MemoryStorage implements OutboxStorage {
  readonly calls = new Map<string, StoredCall>();
  readonly log: string[] = [];
  put(call: StoredCall): void {
    this.log.push(`put ${call.key}`);
    this.calls.set(call.key, structuredClone(call));
  }
  delete(key: string): void {
    this.log.push(`delete ${key}`);
    this.calls.delete(key);
  }
  async list(): Promise<StoredCall[]> {
    return [...this.calls.values()].map((c) => structuredClone(c));
  }
}

let unique = 0;
const fresh = (what: string): string => `${what} ${process.pid}.${++unique}`;

for (const codec of ["proto", "json"] as const) {
  describe(`exactly once, Go server, ${codec}`, () => {
    let server: GoServer;
    let proxy: BlackholeProxy;
    before(async () => {
      server = await GoServer.start();
      proxy = await BlackholeProxy.start(server.addr);
    });
    after(async () => {
      await proxy.stop();
      await server.stop("SIGKILL");
    });

    test("a lost reply: sent again with the same key, the handler ran once, the first run's reply", async () => {
      const client = newClient({ url: `ws://${proxy.addr}/ws`, codec });
      try {
        await client.ping();
        const accepted = proxy.accepted;
        proxy.dropNextReply();
        const text = fresh("pay 10");
        const res = await client.unary(TestService.method.echo, { text }, { exactlyOnce: true, timeoutMs: 10_000 });
        assert.equal(res.text, text);
        assert.equal(await runsOf(server, text), 1, "handler runs");
        assert.equal(proxy.accepted, accepted + 1, "a second connection");
        assert.equal(client.outboxSize, 0);

        // Without a key the same loss fails the call: its outcome is unknown.
        proxy.dropNextReply();
        const plain = fresh("plain");
        await assert.rejects(client.unary(TestService.method.fail, { code: 5, message: plain }, { timeoutMs: 10_000 }), (err) => {
          assert.ok(err instanceof ProtowsError);
          assert.equal(err.code, "unavailable");
          return true;
        });
      } finally {
        client.close();
      }
    });

    test("a given key: a second call with the same key gets the first outcome; another request is refused", async () => {
      const client = newClient({ url: server.url, codec });
      try {
        const text = fresh("keyed");
        const key = `k-${codec}-${unique}`;
        assert.equal((await client.unary(TestService.method.echo, { text }, { idempotencyKey: key })).text, text);
        assert.equal((await client.unary(TestService.method.echo, { text }, { idempotencyKey: key })).text, text);
        assert.equal(await runsOf(server, text), 1);
        await assert.rejects(client.unary(TestService.method.echo, { text: "other" }, { idempotencyKey: key }), (err) => {
          assert.ok(err instanceof ProtowsError);
          assert.equal(err.code, "failed_precondition");
          return true;
        });
        await assert.rejects(client.unary(TestService.method.echo, { text }, { idempotencyKey: "bad key" }), (err) => {
          assert.ok(err instanceof ProtowsError);
          assert.equal(err.code, "invalid_argument");
          return true;
        });
      } finally {
        client.close();
      }
    });

    test("calls made while the server is away are sent, in order, once it is back; each ran once", async () => {
      const local = await GoServer.start();
      const client = newClient({ url: local.url, codec });
      try {
        await client.ping();
        await local.stop("SIGKILL");
        await waitFor(() => client.state === "reconnecting", 5000, "reconnecting");
        const texts = [1, 2, 3, 4, 5].map((i) => fresh(`offline ${i}`));
        const calls = texts.map((text) => client.unary(TestService.method.echo, { text }, { exactlyOnce: true, timeoutMs: 20_000 }));
        assert.equal(client.outboxSize, 5);
        await local.restart();
        const res = await Promise.all(calls);
        assert.deepEqual(res.map((r) => r.text), texts);
        for (const t of texts) assert.equal(await runsOf(local, t), 1, t);
      } finally {
        client.close();
        await local.stop("SIGKILL");
      }
    });

    test("a deadline that passes drops the call with deadline_exceeded; it is never sent", async () => {
      const local = await GoServer.start();
      const storage = new MemoryStorage();
      const client = newClient({ url: local.url, codec, outboxStorage: storage });
      try {
        await client.ping();
        await local.stop("SIGKILL");
        const text = fresh("late");
        const started = Date.now();
        await assert.rejects(client.unary(TestService.method.echo, { text }, { exactlyOnce: true, timeoutMs: 300 }), (err) => {
          assert.ok(err instanceof ProtowsError);
          assert.equal(err.code, "deadline_exceeded");
          return true;
        });
        assert.ok(Date.now() - started >= 290, "rejected before its deadline");
        assert.equal(client.outboxSize, 0);
        assert.equal(storage.calls.size, 0, "left in the storage");
        assert.equal(storage.log.length, 2);
        await local.restart();
        await client.ping();
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(await runsOf(local, text), 0, "a dropped call was sent");
      } finally {
        client.close();
        await local.stop("SIGKILL");
      }
    });

    test("a reload mid-call: the next client on the same storage sends it again and reports the answer; one run", async () => {
      const storage = new MemoryStorage();
      const first = newClient({ url: `ws://${proxy.addr}/ws`, codec, outboxStorage: storage });
      const text = fresh("reload");
      await first.ping();
      proxy.dropNextReply();
      proxy.refuseNew = true; // the first client does not get through again
      const pending = first.unary(TestService.method.echo, { text }, { exactlyOnce: true, metadata: { room: "lobby" } });
      await waitFor(() => first.state === "reconnecting", 5000, "the reply dropped");
      assert.equal(await runsOf(server, text), 1);
      first.close(); // the page goes away before the answer
      proxy.refuseNew = false;
      await assert.rejects(pending, (err) => err instanceof ProtowsError && err.code === "canceled");
      assert.equal(storage.calls.size, 1, "the call stays stored");
      const key = [...storage.calls.keys()][0]!;

      const recovered: RecoveredCall[] = [];
      const second = newClient({ url: server.url, codec, outboxStorage: storage, onRecoveredCall: (c) => recovered.push(c) });
      try {
        await waitFor(() => recovered.length === 1, 5000, "the recovered call's answer");
        const c = recovered[0]!;
        assert.equal(c.key, key);
        assert.equal(c.method, "/protows.test.v1.TestService/Echo");
        assert.deepEqual(c.metadata, { room: "lobby" });
        assert.equal(c.error, undefined);
        assert.equal(c.request(EchoRequestSchema).text, text);
        assert.equal(c.response(EchoResponseSchema).text, text);
        assert.equal(await runsOf(server, text), 1, "handler runs");
        assert.equal(storage.calls.size, 0);
        assert.equal(second.outboxSize, 0);
      } finally {
        second.close();
      }
    });
  });

  describe(`exactly once, fake server, ${codec}`, () => {
    let fake: FakeServer;
    before(async () => {
      fake = await startFake();
    });
    after(() => fake.stop());

    test("calls are sent in the order they were made, on the first connection and again on the next, with the same keys", async () => {
      const client = newClient({ url: fake.url, codec });
      try {
        await client.ping();
        fake.received.length = 0;
        fake.muteEcho = true;
        const n = 20;
        const calls = Array.from({ length: n }, (_, i) => client.unary(TestService.method.echo, { text: String(i) }, { exactlyOnce: true }));
        const echoes = () => fake.received.filter((e) => e.kind === Kind.REQUEST);
        await waitFor(() => echoes().length === n, 5000, "the first sends");
        fake.muteEcho = false;
        for (const s of fake.sockets) s.terminate();
        const res = await Promise.all(calls);
        assert.deepEqual(res.map((r) => r.text), Array.from({ length: n }, (_, i) => String(i)));
        const sent = echoes();
        assert.equal(sent.length, 2 * n);
        const text = (e: (typeof sent)[number]) => client.subprotocol === "protows.v1.json"
          ? (e.payload as { text: string }).text
          : String.fromCharCode(...(e.payload as Uint8Array).subarray(2));
        for (let i = 0; i < n; i++) {
          assert.equal(text(sent[i]!), String(i), "order on the first connection");
          assert.equal(text(sent[n + i]!), String(i), "order on the second connection");
          assert.ok(sent[i]!.idempotencyKey !== undefined && sent[i]!.idempotencyKey!.length > 0);
          assert.equal(sent[n + i]!.idempotencyKey, sent[i]!.idempotencyKey, "the same key");
        }
        assert.equal(new Set(sent.slice(0, n).map((e) => e.idempotencyKey)).size, n, "a key per call");
      } finally {
        client.close();
      }
    });

    test("interceptors wrap exactly-once calls: their metadata is sent with the key, every time", async () => {
      const seen: string[] = [];
      const client = newClient({
        url: fake.url,
        codec,
        interceptors: [
          (next) => async (req) => {
            seen.push(req.methodName);
            req.metadata["x-trace"] = "t1";
            return next(req);
          },
        ],
      });
      try {
        await client.ping();
        fake.received.length = 0;
        let md: Record<string, string> = {};
        const res = await client.unary(TestService.method.echo, { text: "wrapped" }, { exactlyOnce: true, onReplyMetadata: (m) => (md = m) });
        assert.equal(res.text, "wrapped");
        assert.deepEqual(seen, ["/protows.test.v1.TestService/Echo"]);
        assert.deepEqual(md, { "x-trace": "t1" });
        const sent = fake.received.filter((e) => e.kind === Kind.REQUEST);
        assert.equal(sent.length, 1);
        assert.deepEqual(sent[0]!.metadata, { "x-trace": "t1" });
        // 128 random bits in base64url, without padding.
        assert.match(sent[0]!.idempotencyKey ?? "", /^[A-Za-z0-9_-]{22}$/);
      } finally {
        client.close();
      }
    });

    test("an ERROR unavailable sends the call again after a backoff, with the same key, up to 3 times", async () => {
      const client = newClient({ url: fake.url, codec });
      try {
        await client.ping();
        fake.received.length = 0;
        fake.echoUnavailable = 2;
        const res = await client.unary(TestService.method.echo, { text: "again" }, { exactlyOnce: true });
        assert.equal(res.text, "again");
        const sent = fake.received.filter((e) => e.kind === Kind.REQUEST);
        assert.equal(sent.length, 3);
        assert.ok(sent.every((e) => e.idempotencyKey === sent[0]!.idempotencyKey));
        // A fourth unavailable is the answer.
        fake.echoUnavailable = 4;
        await assert.rejects(client.unary(TestService.method.echo, { text: "gone" }, { exactlyOnce: true }), (err) => {
          assert.ok(err instanceof ProtowsError);
          assert.equal(err.code, "unavailable");
          return true;
        });
        assert.equal(fake.echoUnavailable, 0);
      } finally {
        fake.echoUnavailable = 0;
        client.close();
      }
    });

    test("at most 64 outbox calls are in flight on a connection; the rest follow, in order", async () => {
      const client = newClient({ url: fake.url, codec });
      try {
        await client.ping();
        fake.received.length = 0;
        fake.muteEcho = true;
        const calls = Array.from({ length: 100 }, (_, i) => client.unary(TestService.method.echo, { text: `w${i}` }, { exactlyOnce: true }));
        const requests = () => fake.received.filter((e) => e.kind === Kind.REQUEST).length;
        await waitFor(() => requests() === 64, 5000, "64 sends");
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(requests(), 64, "more than 64 in flight");
        fake.muteEcho = false;
        for (const s of fake.sockets) s.terminate();
        const res = await Promise.all(calls);
        assert.deepEqual(res.map((r) => r.text), Array.from({ length: 100 }, (_, i) => `w${i}`));
      } finally {
        fake.muteEcho = false;
        client.close();
      }
    });
  });
}
