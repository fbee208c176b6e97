// The browser end-to-end page: bundled by esbuild (browser.test.ts) and
// served by the Go test server's -static. It calls TestService through the
// generated client (protoc-gen-protows-es) in both codecs with the
// browser's own WebSocket, keeps a stream open through
// server restarts, and writes what happens into the DOM, which the test
// reads.
import { Client, ProtowsError, type ConnectionState } from "@protows/client";
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

for (const codec of codecs) {
  const client = new Client({
    url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`,
    codec,
    backoff: { initialMs: 50, maxMs: 500 },
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
        show(`${phase}-${codec}`, `echo=${echo.text} sub=${who.subprotocol} count=${counted.join(",")} fail=${failed}`);
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

declare global {
  interface Window {
    protowsCalls(phase: string): Promise<void>;
  }
}
window.protowsCalls = calls;
void calls("first");
// Referenced so that the bundle shows the runtime works without the
// generated client too.
show("methods", TestService.methods.map((m) => m.name).join(","));
