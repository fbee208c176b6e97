// Resumable room streams (docs/PROTOCOL.md section 14) against a real Go
// hub with history (test/roomserver, history in memory), in both codecs: a
// stream whose link silently dies while the room goes on reconnects and
// gets every message once, in order, as recovered; a join with history
// starts with the room's latest messages; a server restart (a new epoch)
// is reported as an unrecoverable gap.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import {
  Client,
  createClient,
  type ClientOptions,
  type StreamMessageInfo,
  type StreamRecovery,
  type WebSocketConstructor,
} from "../src/index.js";
import { ChatService } from "../../../gen/ts/examples/chat/v1/chat_pb.js";
import { GoServer, roomServerPkg } from "./goserver.js";
import { BlackholeProxy } from "./proxy.js";
import { waitFor } from "./util.js";

const WS = WebSocket as unknown as WebSocketConstructor;

function newClient(opts: Omit<ClientOptions, "WebSocket">): Client {
  return new Client({ WebSocket: WS, backoff: { initialMs: 20, maxMs: 200 }, ...opts });
}

/** What a watcher saw: "text:seq" per message ("(gap)" marked), "[outcome n]" per position. */
interface Watched {
  log: string[];
  texts: string[];
  recoveries: StreamRecovery[];
  done: Promise<void>;
  stop: AbortController;
}

function watch(client: Client, room: string, history = 0): Watched {
  const chat = createClient(ChatService, client);
  const stop = new AbortController();
  const w: Watched = { log: [], texts: [], recoveries: [], stop, done: Promise.resolve() };
  let info: StreamMessageInfo | undefined;
  w.done = (async () => {
    try {
      for await (const ev of chat.watch({ room }, {
        signal: stop.signal,
        history,
        onMessageInfo: (i) => (info = i),
        onRecovery: (r) => {
          w.recoveries.push(r);
          w.log.push(`[${r.recovery} ${r.replayed}]`);
        },
      })) {
        if (ev.event.case !== "message") continue;
        w.texts.push(ev.event.value.text);
        w.log.push(`${ev.event.value.text}:${info!.seq}${info!.gap ? "(gap)" : ""}`);
      }
    } catch (err) {
      if (!stop.signal.aborted) throw err;
    }
  })();
  return w;
}

for (const codec of ["proto", "json"] as const) {
  describe(`Go room with history, ${codec}`, () => {
    let server: GoServer;
    before(async () => {
      server = await GoServer.start([], roomServerPkg);
    });
    after(() => server.stop());

    test("a stream whose link dies while the room goes on resumes: every message once, in order, recovered", async () => {
      const proxy = await BlackholeProxy.start(server.addr);
      const watcher = newClient({ url: `ws://${proxy.addr}/ws`, codec, heartbeat: { idleMs: 100, timeoutMs: 200 } });
      const sender = newClient({ url: server.url, codec });
      const chat = createClient(ChatService, sender);
      const room = `cut-${codec}`;
      const w = watch(watcher, room);
      try {
        await waitFor(() => w.recoveries.length === 1, 5000, "the first position");
        const want: string[] = [];
        for (let i = 1; i <= 40; i++) {
          const text = `m${i}`;
          want.push(text);
          await chat.send({ room, text });
          if (i === 10) {
            await waitFor(() => w.texts.length === 10, 5000, "m1..m10 live");
            // The link goes silent: the heartbeat notices, the client
            // reconnects through the proxy, and meanwhile the room goes on.
            proxy.freezeExisting();
          }
          if (i > 10 && i < 30) await new Promise((r) => setTimeout(r, 10));
        }
        await waitFor(() => w.texts.length >= 40, 10_000, "m40");
        await new Promise((r) => setTimeout(r, 100)); // a duplicate would come now
        assert.deepEqual(w.texts, want, "every message once, in order");
        // No gap anywhere; the re-open recovered what was missed.
        assert.ok(!w.log.some((l) => l.includes("(gap)")), w.log.join(" "));
        assert.equal(w.recoveries.length, 2, w.log.join(" "));
        const [fresh, recovered] = w.recoveries as [StreamRecovery, StreamRecovery];
        assert.deepEqual({ ...fresh, epoch: "", offset: 0 }, { recovery: "fresh", lost: false, replayed: 0, epoch: "", offset: 0 });
        assert.notEqual(fresh.epoch, "");
        assert.equal(recovered.recovery, "recovered");
        assert.equal(recovered.lost, false);
        assert.equal(recovered.epoch, fresh.epoch);
        assert.ok(recovered.replayed >= 1, `replayed ${recovered.replayed}: the cut lost nothing to recover`);
        // The seqs are the room's offsets, without a break.
        const seqs = w.log.filter((l) => !l.startsWith("[")).map((l) => Number(l.slice(l.indexOf(":") + 1)));
        assert.deepEqual(seqs, want.map((_, i) => fresh.offset + i + 1));
        // The position came where the missed messages start: after the
        // message whose offset it resumed from.
        const at = w.log.indexOf(`[recovered ${recovered.replayed}]`);
        assert.equal(w.log[at - 1], `m${recovered.offset - fresh.offset}:${recovered.offset}`);
      } finally {
        w.stop.abort();
        await w.done;
        watcher.close();
        sender.close();
        await proxy.stop();
      }
    });

    test("a join with history starts with the room's latest messages; a server restart is a lost epoch, a gap", async () => {
      const sender = newClient({ url: server.url, codec });
      const chat = createClient(ChatService, sender);
      const room = `hist-${codec}`;
      for (let i = 1; i <= 7; i++) await chat.send({ room, text: `h${i}` });
      const watcher = newClient({ url: server.url, codec });
      const w = watch(watcher, room, 5);
      try {
        await waitFor(() => w.texts.length === 5, 5000, "the history");
        await chat.send({ room, text: "live" });
        await waitFor(() => w.texts.length === 6, 5000, "the live message");
        // The offsets of the store start where it is (a new room's first
        // offset follows the messages the store took before it): only
        // their succession is fixed.
        const base = w.recoveries[0]!.offset;
        assert.deepEqual(w.log, ["[fresh 5]", "h3", "h4", "h5", "h6", "h7", "live"].map((t, i) => (i === 0 ? t : `${t}:${base + i}`)));

        // The history is in memory: a restart loses it, and the room
        // starts again at offset 1 in a new epoch.
        const epoch = w.recoveries[0]!.epoch;
        await server.restart("SIGKILL");
        await waitFor(() => w.recoveries.length === 2, 10_000, "the position after the restart");
        await chat.send({ room, text: "after" });
        await waitFor(() => w.texts.includes("after"), 10_000, "the message after the restart");
        const lost = w.recoveries[1]!;
        assert.equal(lost.recovery, "epoch_changed");
        assert.equal(lost.lost, true);
        assert.notEqual(lost.epoch, epoch);
        assert.deepEqual(w.log.slice(7), ["[epoch_changed 0]", `after:${lost.offset + 1}(gap)`]);
      } finally {
        w.stop.abort();
        await w.done;
        watcher.close();
        sender.close();
      }
    });
  });
}
