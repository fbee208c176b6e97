// The page of the IndexedDB outbox test (indexeddb.test.ts): a client
// whose exactly-once calls are kept in IndexedDB, so that after a reload
// the page sends again what it had no answer for. The WebSocket URL comes
// from the query (?ws=), so that the test can put a proxy in between.
import { Client } from "@protows/client";
import { indexedDBStorage } from "@protows/client/indexeddb";
import { EchoRequestSchema, EchoResponseSchema, TestService } from "../../../../gen/ts/protows/test/v1/test_pb.js";

function show(id: string, text: string): void {
  let el = document.getElementById(id);
  if (el === null) {
    el = document.createElement("div");
    el.id = id;
    document.body.appendChild(el);
  }
  el.textContent = text;
}

const storage = indexedDBStorage({ database: "protows-e2e" });
const recovered: string[] = [];
const client = new Client({
  url: new URLSearchParams(location.search).get("ws")!,
  heartbeat: false,
  backoff: { initialMs: 50, maxMs: 200 },
  outboxStorage: storage,
  onStateChange: (s) => show("state", s.state),
  onRecoveredCall: (c) => {
    recovered.push(c.error !== undefined ? `${c.request(EchoRequestSchema).text}: ${c.error.code}` : `${c.request(EchoRequestSchema).text} -> ${c.response(EchoResponseSchema).text}`);
    show("recovered", recovered.join("|"));
  },
});

declare global {
  interface Window {
    sendOnce(text: string): void;
    storedCount(): Promise<number>;
  }
}

window.sendOnce = (text) => {
  client.unary(TestService.method.echo, { text }, { exactlyOnce: true, timeoutMs: 60_000 }).then(
    (res) => show(`sent-${text}`, `ok ${res.text}`),
    (err: unknown) => show(`sent-${text}`, `error ${String(err)}`),
  );
};
window.storedCount = async () => (await storage.list()).length;
