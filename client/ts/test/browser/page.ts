// The browser end-to-end page: bundled by esbuild (browser.test.ts) and
// served by the Go test server's -static. It calls TestService through the
// generated client (protoc-gen-protows-es) in both codecs with the
// browser's own WebSocket, through an interceptor, keeps a stream open
// through server restarts, makes a client stream and a bidirectional call
// (through the generated client and createClient), tries a wrong path and
// a closed port (the ?closedPort= of the page's URL), and writes what
// happens into the DOM, which the test reads.
import { Client, ProtowsError, createClient, type ConnectionState, type Interceptor, type ServiceClient, type StateChange } from "@protows/client";
import { TestService } from "../../../../gen/ts/protows/test/v1/test_pb.js";
import { TestServiceClient } from "../../../../gen/ts/protows/test/v1/test_protows.js";

const codecs = ["proto", "json"] as const;
type CodecName = (typeof codecs)[number];

function row(id: string): HTMLElement {
  let el = document.getElementById(id);
  if (el === null) {
    el = document.createElement("div");
    el.id = id;
    document.body.appendChild(el);
  }
  return el;
}

function show(id: string, text: string): void {
  row(id).textContent = text;
}

const clients = new Map<CodecName, TestServiceClient>();
// The same service through createClient, for the streams from the client.
const dynamic = new Map<CodecName, ServiceClient<typeof TestService>>();

// The calls the interceptor saw, by kind and method.
const intercepted = new Set<string>();
const seen: Interceptor = (next) => (req) => {
  intercepted.add(`${req.stream ? "stream" : "unary"} ${req.method.name}`);
  show("intercepted", [...intercepted].sort().join(","));
  return next(req);
};

for (const codec of codecs) {
  const client = new Client({
    url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`,
    codec,
    backoff: { initialMs: 50, maxMs: 500 },
    interceptors: [seen],
    onStateChange: (s) => {
      const state: ConnectionState = s.state;
      show(`${codec}-state`, state);
      if (state === "reconnecting") {
        const n = Number(row(`${codec}-reconnects`).dataset.n ?? "0") + 1;
        row(`${codec}-reconnects`).dataset.n = String(n);
        show(`${codec}-reconnects`, String(n));
      }
    },
  });
  clients.set(codec, new TestServiceClient(client));
  dynamic.set(codec, createClient(TestService, client));
}

// calls runs a round of calls and shows their results under the phase name.
async function calls(phase: string): Promise<void> {
  await Promise.all(
    codecs.map(async (codec) => {
      const svc = clients.get(codec)!;
      try {
        const echo = await svc.echo({ text: `${phase} ${codec} «ü» <&>` }, { timeoutMs: 5000 });
        const who = await svc.whoami({}, { timeoutMs: 5000 });
        const counted: number[] = [];
        for await (const m of svc.count({ count: 3 })) counted.push(m.n);
        let failed = "";
        try {
          await svc.fail({ code: 5, message: "nope" });
        } catch (err) {
          failed = err instanceof ProtowsError ? `${err.code}:${err.rawMessage}` : String(err);
        }
        // A client stream and a bidirectional call, each through the
        // generated client and through createClient.
        const dyn = dynamic.get(codec)!;
        const nums = (k: number) => Array.from({ length: k }, (_, i) => ({ n: BigInt(i + 1) }));
        const sums = [(await svc.sum(nums(100))).sum, (await dyn.sum(nums(10))).sum];
        const echoed: string[] = [];
        for (const bidi of [svc.echoStream(), dyn.echoStream()]) {
          await bidi.send({ text: "x", repeat: 2 });
          await bidi.send({ text: "y" });
          await bidi.closeSend();
          for await (const m of bidi) echoed.push(`${m.n}${m.text}`);
        }
        show(
          `${phase}-${codec}`,
          `echo=${echo.text} sub=${who.subprotocol} count=${counted.join(",")} fail=${failed} sum=${sums.join(",")} bidi=${echoed.join(",")}`,
        );
      } catch (err) {
        show(`${phase}-${codec}`, `error: ${String(err)}`);
      }
    }),
  );
}

// A stream that stays open across restarts: it shows how many messages it
// got and how often it started over from 1 (a resubscribe).
for (const codec of codecs) {
  void (async () => {
    let got = 0;
    let restarts = 0;
    try {
      for await (const m of clients.get(codec)!.count({ interval: { seconds: 0n, nanos: 50_000_000 } })) {
        got++;
        if (m.n === 1 && got > 1) restarts++;
        show(`${codec}-stream`, `got=${got} restarts=${restarts} last=${m.n}`);
      }
    } catch (err) {
      show(`${codec}-stream`, `error: ${String(err)}`);
    }
  })();
}

function describe(err: unknown): string {
  return err instanceof ProtowsError ? `${err.code}|${err.message}` : `not a ProtowsError: ${String(err)}`;
}

// Fail fast: Client.connect at a wrong path and at a closed port rejects,
// and a call on a new Client at a wrong path fails, with a state change
// that says why. A browser sees a 1006 close in every case.
async function failFast(): Promise<void> {
  const ws = location.protocol === "https:" ? "wss" : "ws";
  const urls = {
    path: `${ws}://${location.host}/nope`,
    port: `${ws}://${location.hostname}:${new URLSearchParams(location.search).get("closedPort")}/ws`,
  };
  for (const [name, url] of Object.entries(urls)) {
    const start = performance.now();
    try {
      (await Client.connect({ url })).close();
      show(`failfast-${name}`, "connected");
    } catch (err) {
      show(`failfast-${name}`, `${describe(err)}|${performance.now() - start < 5000 ? "fast" : "slow"}`);
    }
  }
  const states: StateChange[] = [];
  const client = new Client({ url: urls.path, backoff: { initialMs: 100, maxMs: 100 }, onStateChange: (s) => states.push(s) });
  try {
    await new TestServiceClient(client).echo({ text: "x" });
    show("failfast-call", "answered");
  } catch (err) {
    const r = states.find((s) => s.state === "reconnecting");
    show(
      "failfast-call",
      `${describe(err)}|method=${err instanceof ProtowsError ? err.method : ""}|neverOpened=${r?.neverOpened}|closeCode=${r?.closeCode}|error=${r?.error?.code}`,
    );
  } finally {
    client.close();
  }
}

declare global {
  interface Window {
    protowsCalls(phase: string): Promise<void>;
  }
}
window.protowsCalls = calls;
void calls("first");
void failFast();
// Referenced so that the bundle shows the runtime works without the
// generated client too.
show("methods", TestService.methods.map((m) => m.name).join(","));
