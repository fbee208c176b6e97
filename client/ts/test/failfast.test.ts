// Failing fast and clearly when the server cannot be reached (Node, with
// the ws package; browser.test.ts has the browser's side):
//
//   - Client.connect, the Go client's Dial: a wrong port, a wrong path
//     (404), a server that never answers the handshake, a refused token:
//     it rejects with an error that names the URL and says why, and the
//     client is closed; a good URL resolves with a connected client;
//   - new Client at a wrong path: the calls and streams waiting for the
//     first connection fail when it fails, a call made between attempts
//     fails at once, each failure is a reconnecting state change that says
//     why, and the client keeps trying;
//   - new Client before the server is up: calls fail fast until it is;
//     once connected, calls made while it reconnects wait, as before.
import assert from "node:assert/strict";
import net, { type AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { Client, ProtowsError, type ClientOptions, type StateChange, type WebSocketConstructor } from "../src/index.js";
import { TestService } from "../../../gen/ts/protows/test/v1/test_pb.js";
import { GoServer } from "./goserver.js";
import { waitFor } from "./util.js";

const WS = WebSocket as unknown as WebSocketConstructor;
const echoName = "/protows.test.v1.TestService/Echo";
const countName = "/protows.test.v1.TestService/Count";

// freePort returns a loopback port nothing listens on (it did a moment ago).
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

// A TCP server that accepts connections and never answers.
async function silentServer(): Promise<{ addr: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const s = net.createServer((sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
  });
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  return {
    addr: `127.0.0.1:${(s.address() as AddressInfo).port}`,
    close: () => {
      for (const sock of sockets) sock.destroy();
      return new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}

function connectFailed(url: string, detail: RegExp, code = "unavailable"): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof ProtowsError, `not a ProtowsError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.ok(err.rawMessage.startsWith(`cannot connect to ${url}: `), err.message);
    assert.match(err.rawMessage, detail);
    return true;
  };
}

// Client.connect with the states it reported.
async function dial(opts: Omit<ClientOptions, "WebSocket">): Promise<{ client?: Client; error?: unknown; states: StateChange[]; ms: number }> {
  const states: StateChange[] = [];
  const start = Date.now();
  try {
    const client = await Client.connect({ WebSocket: WS, ...opts, onStateChange: (s) => states.push(s) });
    return { client, states, ms: Date.now() - start };
  } catch (error) {
    return { error, states, ms: Date.now() - start };
  }
}

for (const codec of ["proto", "json"] as const) {
  describe(`Client.connect fails like Go's Dial, ${codec}`, () => {
    let server: GoServer;
    before(async () => {
      server = await GoServer.start();
    });
    after(() => server.stop());

    test("a wrong port: refused at once, the URL and the reason in the error", async () => {
      const url = `ws://127.0.0.1:${await freePort()}/ws`;
      const r = await dial({ url, codec });
      assert.equal(r.client, undefined);
      connectFailed(url, /the WebSocket did not open \(1006: connect ECONNREFUSED 127\.0\.0\.1:\d+\)/)(r.error);
      assert.equal((r.error as ProtowsError).method, undefined);
      assert.ok(r.ms < 2000, `${r.ms} ms`);
      assert.deepEqual(
        r.states.map((s) => s.state),
        ["connecting", "closed"],
      );
      assert.equal(r.states[1]!.neverOpened, true);
      assert.equal(r.states[1]!.error, r.error);
    });

    test("a wrong path: the server's 404, as ws reports it", async () => {
      const url = `ws://${server.addr}/nope`;
      const r = await dial({ url, codec });
      connectFailed(url, /the WebSocket did not open \(1006: Unexpected server response: 404\)/)(r.error);
      assert.equal(r.states.at(-1)?.state, "closed");
      assert.equal(r.states.at(-1)?.neverOpened, true);
    });

    test("a server that never answers the handshake: connectTimeoutMs", async () => {
      const silent = await silentServer();
      try {
        const url = `ws://${silent.addr}/ws`;
        const r = await dial({ url, codec, connectTimeoutMs: 300 });
        connectFailed(url, /the WebSocket did not open \(4000 not ready within 300 ms\)/)(r.error);
        assert.ok(r.ms >= 250 && r.ms < 3000, `${r.ms} ms`);
        assert.equal(r.states.at(-1)?.neverOpened, true);
      } finally {
        await silent.close();
      }
    });

    test("a good URL: resolves once connected", async () => {
      const r = await dial({ url: server.url, codec });
      assert.ok(r.client !== undefined, String(r.error));
      try {
        assert.equal(r.client.state, "connected");
        assert.deepEqual(
          r.states.map((s) => s.state),
          ["connecting", "connected"],
        );
        assert.equal((await r.client.unary(TestService.method.echo, { text: "dialed" })).text, "dialed");
      } finally {
        r.client.close();
      }
    });
  });

  describe(`Client.connect with a refused token, ${codec}`, () => {
    let server: GoServer;
    before(async () => {
      server = await GoServer.start(["-auth", "jwt"]);
    });
    after(() => server.stop());

    test("rejects with unauthenticated after one handshake", async () => {
      let asked = 0;
      const r = await dial({ url: server.url, codec, token: () => (asked++, "not-a-jwt") });
      connectFailed(server.url, /the connection closed before it was ready \(4501 /, "unauthenticated")(r.error);
      assert.equal(asked, 1);
      assert.equal(r.states.at(-1)?.state, "closed");
      assert.equal(r.states.at(-1)?.neverOpened, false);
    });
  });

  describe(`new Client fails calls fast until it has connected, ${codec}`, () => {
    let server: GoServer;
    before(async () => {
      server = await GoServer.start();
    });
    after(() => server.stop());

    test("a wrong path: waiting calls and streams fail, the state says why, the client keeps trying", async () => {
      const url = `ws://${server.addr}/nope`;
      const states: StateChange[] = [];
      const client = new Client({ url, codec, WebSocket: WS, backoff: { initialMs: 100, maxMs: 100 }, onStateChange: (s) => states.push(s) });
      try {
        const start = Date.now();
        await assert.rejects(client.unary(TestService.method.echo, { text: "x" }), (err) => {
          connectFailed(url, /Unexpected server response: 404/)(err);
          // The call's error names the method and says why.
          assert.equal((err as ProtowsError).method, echoName);
          assert.ok((err as ProtowsError).message.startsWith(`protows: ${echoName}: unavailable: cannot connect to ${url}`));
          return true;
        });
        await assert.rejects(
          (async () => {
            for await (const _ of client.serverStream(TestService.method.count, {})) assert.fail("no message can come");
          })(),
          (err) => {
            connectFailed(url, /Unexpected server response: 404/)(err);
            assert.equal((err as ProtowsError).method, countName);
            return true;
          },
        );
        assert.ok(Date.now() - start < 2000, `${Date.now() - start} ms`);
        const r = states.find((s) => s.state === "reconnecting");
        assert.ok(r !== undefined, JSON.stringify(states));
        assert.equal(r.neverOpened, true);
        assert.equal(r.closeCode, 1006);
        connectFailed(url, /404/)(r.error);
        assert.equal(r.error?.method, undefined);
        // It keeps trying, and every call fails within an attempt.
        await waitFor(() => states.filter((s) => s.state === "reconnecting").length >= 3, 5000, "three attempts");
        for (let i = 0; i < 3; i++) {
          const t = Date.now();
          await assert.rejects(client.unary(TestService.method.echo, { text: "x" }), connectFailed(url, /404/));
          assert.ok(Date.now() - t < 1000, `${Date.now() - t} ms`);
        }
        assert.notEqual(client.state, "closed");
      } finally {
        client.close();
      }
    });

    test("between attempts, a call fails at once with the last attempt's error", async () => {
      const url = `ws://${server.addr}/nope`;
      const states: StateChange[] = [];
      const random = Math.random;
      Math.random = () => 0.99; // the next attempt in 9.9 s
      const client = new Client({ url, codec, WebSocket: WS, backoff: { initialMs: 10_000, maxMs: 10_000 }, onStateChange: (s) => states.push(s) });
      try {
        await assert.rejects(client.ping(), connectFailed(url, /404/));
        assert.equal(client.state, "reconnecting");
        assert.ok(states.at(-1)!.delayMs! > 9000, JSON.stringify(states.at(-1)));
        for (let i = 0; i < 3; i++) {
          const t = Date.now();
          await assert.rejects(client.unary(TestService.method.echo, { text: "x" }), connectFailed(url, /404/));
          assert.ok(Date.now() - t < 200, `${Date.now() - t} ms`);
        }
        assert.equal(states.filter((s) => s.state === "reconnecting").length, 1);
      } finally {
        Math.random = random;
        client.close();
      }
    });
  });

  describe(`new Client before the server is up, ${codec}`, () => {
    test("calls fail fast until it is; once connected, calls wait through a reconnect", async () => {
      const server = await GoServer.start();
      await server.stop();
      const states: StateChange[] = [];
      const client = new Client({
        url: server.url,
        codec,
        WebSocket: WS,
        backoff: { initialMs: 50, maxMs: 200 },
        onStateChange: (s) => states.push(s),
      });
      try {
        await assert.rejects(client.unary(TestService.method.echo, { text: "early" }), connectFailed(server.url, /ECONNREFUSED/));
        await server.restart();
        await waitFor(() => client.state === "connected", 5000, "the first connection");
        assert.equal((await client.unary(TestService.method.echo, { text: "up" })).text, "up");
        // Connected once: a call made while the server is down waits for it.
        const mark = states.length;
        await server.stop("SIGKILL");
        await waitFor(() => client.state === "reconnecting", 5000, "the drop");
        const pending = client.unary(TestService.method.echo, { text: "waited" }, { timeoutMs: 10_000 });
        await waitFor(() => states.slice(mark).some((s) => s.state === "reconnecting" && s.neverOpened === true), 5000, "a failed reconnect");
        await server.restart();
        assert.equal((await pending).text, "waited");
      } finally {
        client.close();
        await server.stop();
      }
    });
  });
}
