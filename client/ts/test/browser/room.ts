// The browser page of the resume test (browser.test.ts): served by
// test/roomserver's -static, it watches a room with history in both
// codecs with the browser's own WebSocket, asking for the latest 3
// messages on entry, and writes each stream's log into the DOM: "[outcome
// replayed]" for each position the server tells, "text" for each message,
// "text(gap)" when messages may be missing before it.
import { Client, createClient, type StreamMessageInfo } from "@protows/client";
import { ChatService } from "../../../../gen/ts/examples/chat/v1/chat_pb.js";

const room = new URLSearchParams(location.search).get("room") ?? "lobby";

for (const codec of ["proto", "json"] as const) {
  const log = document.createElement("div");
  log.id = `${codec}-log`;
  document.body.appendChild(log);
  const client = new Client({
    url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`,
    codec,
    backoff: { initialMs: 20, maxMs: 200 },
    heartbeat: { idleMs: 100, timeoutMs: 200 },
  });
  const chat = createClient(ChatService, client);
  const lines: string[] = [];
  const show = (line: string): void => {
    lines.push(line);
    log.textContent = lines.join(" ");
  };
  let info: StreamMessageInfo | undefined;
  void (async () => {
    try {
      for await (const ev of chat.watch({ room }, {
        history: 3,
        onMessageInfo: (i) => (info = i),
        onRecovery: (r) => show(`[${r.recovery} ${r.replayed}]`),
      })) {
        if (ev.event.case === "message") show(`${ev.event.value.text}${info?.gap === true ? "(gap)" : ""}`);
      }
    } catch (err) {
      show(`error: ${String(err)}`);
    }
  })();
}
