// Interceptors (ClientOptions.interceptors): against the real Go server in
// both codecs, they see unary calls and server streams, through the
// generated client too, in order; they change requests and responses,
// see errors that name the method, answer or refuse a call themselves, and
// see a stream's messages, its end, its failure and a reader's break (which
// still cancels the stream on the server). Against the fake server, which
// shows what goes over the wire, the metadata an interceptor adds goes out
// with unary calls and streams, and the chain runs once per call: a stream
// re-opened after a reconnect sends the same request again. The two
// interceptors of the README (a request id, a logger) are the ones tested.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import WebSocket from "ws";
import { Client, ProtowsError, type Interceptor, type StreamResponse, type WebSocketConstructor } from "../src/index.js";
import { Kind, methodId, methodName } from "../src/protocol.js";
import {
  CountRequestSchema,
  EchoRequestSchema,
  EchoResponseSchema,
  TestService,
  type CountRequest,
  type CountResponse,
  type EchoRequest,
  type EchoResponse,
} from "../../../gen/ts/protows/test/v1/test_pb.js";
import { TestServiceClient } from "../../../gen/ts/protows/test/v1/test_protows.js";
import { startFake, type FakeServer } from "./fakeserver.js";
import { GoServer } from "./goserver.js";

const WS = WebSocket as unknown as WebSocketConstructor;
const echoName = "/protows.test.v1.TestService/Echo";
const failName = "/protows.test.v1.TestService/Fail";
const countName = "/protows.test.v1.TestService/Count";

// The generated client takes the package's Client (dist/), the same code
// as the sources' these tests build.
function generated(client: Client): TestServiceClient {
  return new TestServiceClient(client as unknown as ConstructorParameters<typeof TestServiceClient>[0]);
}

function ms(n: number) {
  return create(DurationSchema, { seconds: BigInt(Math.floor(n / 1000)), nanos: (n % 1000) * 1_000_000 });
}

// The README's first example: a request id in the metadata of every call
// (ids from a counter here, crypto.randomUUID() there).
function requestId(next = () => String(Math.random())): Interceptor {
  return (call) => (req) => {
    req.metadata["x-request-id"] = next();
    return call(req);
  };
}

// The README's second example: one line per call when it ends, a stream's
// when its iteration ends, however it ends (log is console.log there).
function logger(log: (line: string) => void): Interceptor {
  return (next) => async (req) => {
    const done = (outcome: string): void => log(`${req.stream ? "stream" : "unary"} ${req.methodName} ${outcome}`);
    try {
      const res = await next(req);
      if (res.stream) {
        // The messages, the end and a failure come through the iterable.
        return { ...res, message: logged(res.message, done) };
      }
      done("ok");
      return res;
    } catch (err) {
      done(`failed: ${String(err)}`);
      throw err;
    }
  };
}

async function* logged<T>(messages: AsyncIterable<T>, done: (outcome: string) => void): AsyncGenerator<T> {
  let n = 0;
  let outcome = "stopped by the reader";
  try {
    for await (const m of messages) {
      n++;
      yield m;
    }
    outcome = "ended";
  } catch (err) {
    outcome = `failed: ${String(err)}`;
    throw err;
  } finally {
    done(`${outcome} after ${n}`);
  }
}

function isCall(code: string, method: string): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof ProtowsError, `not a ProtowsError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.equal(err.method, method);
    assert.ok(err.message.startsWith(`protows: ${method}: ${code}`), err.message);
    return true;
  };
}

for (const codec of ["proto", "json"] as const) {
  describe(`interceptors on the Go server, ${codec}`, () => {
    let server: GoServer;
    before(async () => {
      server = await GoServer.start(["-max-in-flight", "4"]);
    });
    after(() => server.stop());

    test("see unary calls in order, change requests and responses, and see errors that name the method", async () => {
      const lines: string[] = [];
      const order: string[] = [];
      const tag =
        (name: string): Interceptor =>
        (next) =>
        async (req) => {
          order.push(`${name}>`);
          const res = await next(req);
          order.push(`<${name}`);
          return res;
        };
      // Shouts Echo's text to the server, and marks its answer.
      const shout: Interceptor = (next) => async (req) => {
        if (req.method !== TestService.method.echo) return next(req);
        const message = create(EchoRequestSchema, { text: (req.message as EchoRequest).text.toUpperCase() });
        const res = await next({ ...req, message });
        if (res.stream) throw new Error("a unary call answered with a stream");
        return { ...res, message: create(EchoResponseSchema, { text: `${(res.message as EchoResponse).text}!` }) };
      };
      const client = new Client({ url: server.url, codec, WebSocket: WS, interceptors: [tag("a"), logger((l) => lines.push(l)), tag("b"), shout] });
      try {
        assert.equal((await client.unary(TestService.method.echo, { text: "hi" })).text, "HI!");
        assert.deepEqual(order, ["a>", "b>", "<b", "<a"]);
        // The generated client's calls go through them too.
        const svc = generated(client);
        assert.equal((await svc.echo({ text: "gen" })).text, "GEN!");
        await assert.rejects(svc.fail({ code: 5, message: "no such room" }), (err) => {
          isCall("not_found", failName)(err);
          assert.equal((err as ProtowsError).rawMessage, "no such room");
          return true;
        });
        assert.deepEqual(lines, [
          `unary ${echoName} ok`,
          `unary ${echoName} ok`,
          `unary ${failName} failed: ProtowsError: protows: ${failName}: not_found: no such room`,
        ]);
      } finally {
        client.close();
      }
    });

    test("may answer or refuse a call without the server", async () => {
      const canned: Interceptor = (next) => async (req) => {
        if (req.method === TestService.method.echo && (req.message as EchoRequest).text === "cached") {
          return { stream: false, method: req.method, methodName: req.methodName, message: create(EchoResponseSchema, { text: "from the cache" }), metadata: {} };
        }
        if ((req.message as { text?: string }).text === "forbidden") {
          throw new ProtowsError("permission_denied", "not for you");
        }
        return next(req);
      };
      const client = new Client({ url: server.url, codec, WebSocket: WS, interceptors: [canned] });
      try {
        assert.equal((await client.unary(TestService.method.echo, { text: "cached" })).text, "from the cache");
        await assert.rejects(client.unary(TestService.method.echo, { text: "forbidden" }), isCall("permission_denied", echoName));
        assert.equal((await client.unary(TestService.method.echo, { text: "real" })).text, "real");
      } finally {
        client.close();
      }
    });

    test("see server streams: the request, each message, the end, a failure and a break", async () => {
      const lines: string[] = [];
      // Asks for three messages when the caller asked for none (endless),
      // and multiplies what comes back by 10.
      const tens: Interceptor = (next) => async (req) => {
        if (req.method !== TestService.method.count) return next(req);
        const asked = req.message as CountRequest;
        const message = asked.count === 0 && asked.interval === undefined ? create(CountRequestSchema, { ...asked, count: 3 }) : asked;
        const res = (await next({ ...req, message })) as StreamResponse;
        return {
          ...res,
          message: (async function* () {
            for await (const m of res.message as AsyncIterable<CountResponse>) yield { ...m, n: m.n * 10 };
          })(),
        };
      };
      const client = new Client({ url: server.url, codec, WebSocket: WS, interceptors: [logger((l) => lines.push(l)), tens] });
      try {
        const got: number[] = [];
        for await (const m of client.serverStream(TestService.method.count, {})) got.push(m.n);
        assert.deepEqual(got, [10, 20, 30]);

        const partial: number[] = [];
        await assert.rejects(
          (async () => {
            for await (const m of client.serverStream(TestService.method.count, { count: 2, failCode: 9 })) partial.push(m.n);
          })(),
          isCall("failed_precondition", countName),
        );
        assert.deepEqual(partial, [10, 20]);

        // A break goes through the interceptors' iterables to the stream,
        // which cancels it on the server: the server allows 4 calls in
        // flight, so five streams left open would fail the fifth.
        for (let i = 0; i < 5; i++) {
          for await (const m of generated(client).count({ interval: ms(5) })) {
            if (m.n === 20) break;
          }
        }
        const all = await Promise.all([1, 2, 3, 4].map(() => client.unary(TestService.method.sleep, { delay: ms(10) }, { timeoutMs: 5000 })));
        assert.equal(all.length, 4);

        assert.deepEqual(lines, [
          `stream ${countName} ended after 3`,
          `stream ${countName} failed: ProtowsError: protows: ${countName}: failed_precondition: failed after 2 messages after 2`,
          ...Array.from({ length: 5 }, () => `stream ${countName} stopped by the reader after 2`),
          ...Array.from({ length: 4 }, () => `unary /protows.test.v1.TestService/Sleep ok`),
        ]);
      } finally {
        client.close();
      }
    });
  });

  describe(`interceptors on the wire (fake server), ${codec}`, () => {
    let fake: FakeServer;
    before(async () => {
      fake = await startFake();
    });
    after(() => fake.stop());

    test("an interceptor's metadata goes out with unary calls and streams; the chain runs once per call", async () => {
      let ids = 0;
      let chains = 0;
      const counting: Interceptor = (next) => (req) => {
        chains++;
        return next(req);
      };
      const client = new Client({
        url: fake.url,
        codec,
        WebSocket: WS,
        backoff: { initialMs: 20 },
        interceptors: [counting, requestId(() => `${codec}-${++ids}`)],
      });
      try {
        const own = { "x-trace": "t1" };
        const replied: Record<string, string>[] = [];
        const res = await client.unary(TestService.method.echo, { text: "md" }, { metadata: own, onReplyMetadata: (md) => replied.push(md) });
        assert.equal(res.text, "md");
        // The fake echoes the request's metadata in the REPLY.
        assert.deepEqual(replied, [{ "x-trace": "t1", "x-request-id": `${codec}-1` }]);
        assert.deepEqual(own, { "x-trace": "t1" }, "the caller's object is not changed");

        // A stream cut by a 4008 is re-opened with the same request.
        const seen: number[] = [];
        let cut = false;
        for await (const m of client.serverStream(TestService.method.count, {}, { metadata: own })) {
          seen.push(m.n);
          if (seen.length === 2 && !cut) {
            cut = true;
            fake.closeAll(4008, "slow consumer");
          }
          if (seen.length === 4) break;
        }
        assert.deepEqual(seen.slice(2), [1, 2], `re-opened from 1: ${seen}`);
        assert.equal(chains, 2);

        const requests = (name: string) =>
          fake.received
            .filter((e) => e.kind === Kind.REQUEST && (e.method === name || e.methodId === methodId(name)))
            .map((e) => e.metadata);
        assert.deepEqual(requests(methodName(TestService.method.echo)), [{ "x-trace": "t1", "x-request-id": `${codec}-1` }]);
        assert.deepEqual(requests(countName), [
          { "x-trace": "t1", "x-request-id": `${codec}-2` },
          { "x-trace": "t1", "x-request-id": `${codec}-2` },
        ]);
      } finally {
        client.close();
      }
    });
  });
}
