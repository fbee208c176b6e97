// Browser end to end: Debian's Chromium, headless, driven by playwright-core,
// loads a page served by the Go test server (-static) that calls
// TestService in both codecs through the browser's WebSocket and an
// interceptor, keeps working across a server restart, and fails fast at a
// wrong path and a closed port; and a page (browser/room.ts) that watches
// a room with history (test/roomserver) and resumes it after its link
// died. The tests assert what the pages show.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import net, { type AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import * as esbuild from "esbuild";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import WebSocket from "ws";
import { Client, createClient, type WebSocketConstructor } from "../src/index.js";
import { ChatService } from "../../../gen/ts/examples/chat/v1/chat_pb.js";
import { GoServer, roomServerPkg } from "./goserver.js";
import { BlackholeProxy } from "./proxy.js";
import { pkgDir } from "./repo.js";

const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";

let server: GoServer;
let context: BrowserContext;
let page: Page;
let profile: string;
let wwwDir: string;
const pageErrors: string[] = [];

before(async () => {
  const www = join(pkgDir, "build-test", "www");
  mkdirSync(www, { recursive: true });
  for (const [page, out, html] of [["page.ts", "app.js", "index.html"], ["room.ts", "room.js", "room.html"]]) {
    await esbuild.build({
      entryPoints: [join(pkgDir, "test", "browser", page!)],
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      outfile: join(www, out!),
      logLevel: "warning",
    });
    writeFileSync(
      join(www, html!),
      `<!doctype html><meta charset="utf-8"><title>protows e2e</title><body><script type="module" src="${out}"></script></body>\n`,
    );
  }
  wwwDir = www;
  server = await GoServer.start(["-static", www]);
  profile = mkdtempSync(join(tmpdir(), "protows-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (err) => pageErrors.push(String(err)));
});

after(async () => {
  await context?.close();
  await server?.stop("SIGKILL");
  if (profile !== undefined) rmSync(profile, { recursive: true, force: true });
});

async function text(id: string): Promise<string> {
  return (await page.locator(`#${id}`).textContent({ timeout: 10_000 })) ?? "";
}

async function waitText(id: string, pred: (s: string) => boolean): Promise<string> {
  const end = Date.now() + 10_000;
  for (;;) {
    const t = (await page.locator(`#${id}`).count()) > 0 ? await text(id) : "";
    if (pred(t)) return t;
    if (Date.now() > end) throw new Error(`#${id} never matched; last: ${JSON.stringify(t)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function streamOf(s: string): { got: number; restarts: number } {
  const m = /^got=(\d+) restarts=(\d+)/.exec(s);
  return m === null ? { got: 0, restarts: -1 } : { got: Number(m[1]), restarts: Number(m[2]) };
}

// freePort returns a loopback port nothing listens on (it did a moment ago).
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

test("the page calls in both codecs and survives a server restart", async () => {
  const closedPort = await freePort();
  await page.goto(`${server.httpUrl}/index.html?closedPort=${closedPort}`);
  for (const codec of ["proto", "json"]) {
    const sub = codec === "proto" ? "protows.v1.proto" : "protows.v1.json";
    assert.equal(
      await waitText(`first-${codec}`, (s) => s !== ""),
      `echo=first ${codec} «ü» <&> sub=${sub} count=1,2,3 fail=not_found:nope sum=5050,55 bidi=1x,2x,3y,1x,2x,3y`,
    );
    await waitText(`${codec}-stream`, (s) => streamOf(s).got >= 3);
    assert.equal(await text(`${codec}-state`), "connected");
  }

  await server.restart("SIGKILL");

  for (const codec of ["proto", "json"]) {
    await waitText(`${codec}-reconnects`, (s) => Number(s) >= 1);
    await waitText(`${codec}-state`, (s) => s === "connected");
    // The stream was resubscribed: it started over from 1 and goes on.
    const s = streamOf(await waitText(`${codec}-stream`, (s) => streamOf(s).restarts >= 1));
    await waitText(`${codec}-stream`, (t) => streamOf(t).got >= s.got + 2);
  }
  await page.evaluate(() => window.protowsCalls("second"));
  for (const codec of ["proto", "json"]) {
    const sub = codec === "proto" ? "protows.v1.proto" : "protows.v1.json";
    assert.equal(await text(`second-${codec}`), `echo=second ${codec} «ü» <&> sub=${sub} count=1,2,3 fail=not_found:nope sum=5050,55 bidi=1x,2x,3y,1x,2x,3y`);
  }
  assert.equal(await text("methods"), "Echo,Fail,Sleep,Count,Whoami,Sum,EchoStream");
  assert.equal(await text("intercepted"), "stream Count,unary Echo,unary Fail,unary Whoami");

  // Fail fast: a browser learns nothing but 1006, and says so.
  const wsHost = server.addr;
  const didNotOpen = "the WebSocket did not open (1006): the server is down or refused it, or the host, port or path is wrong";
  assert.equal(
    await waitText("failfast-path", (s) => s !== ""),
    `unavailable|protows: unavailable: cannot connect to ws://${wsHost}/nope: ${didNotOpen}|fast`,
  );
  assert.equal(
    await waitText("failfast-port", (s) => s !== ""),
    `unavailable|protows: unavailable: cannot connect to ws://127.0.0.1:${closedPort}/ws: ${didNotOpen}|fast`,
  );
  const echo = "/protows.test.v1.TestService/Echo";
  assert.equal(
    await waitText("failfast-call", (s) => s !== ""),
    `unavailable|protows: ${echo}: unavailable: cannot connect to ws://${wsHost}/nope: ${didNotOpen}|method=${echo}|neverOpened=true|closeCode=1006|error=unavailable`,
  );
  assert.deepEqual(pageErrors, []);
});

test("a page whose link dies resumes its room: history on entry, then every message once, recovered", async () => {
  const rooms = await GoServer.start(["-static", wwwDir], roomServerPkg);
  // The page and its WebSockets go through the proxy (same origin), whose
  // existing connections then go silent.
  const proxy = await BlackholeProxy.start(rooms.addr);
  const sender = new Client({ url: rooms.url, WebSocket: WebSocket as unknown as WebSocketConstructor });
  const chat = createClient(ChatService, sender);
  const room = "browser";
  const logs = (): Promise<string[]> => Promise.all(["proto", "json"].map((c) => text(`${c}-log`)));
  const waitLogs = async (pred: (log: string) => boolean, what: string): Promise<string[]> => {
    const end = Date.now() + 10_000;
    for (;;) {
      const ls = (await page.locator("#proto-log").count()) > 0 ? await logs() : [];
      if (ls.length === 2 && ls.every(pred)) return ls;
      if (Date.now() > end) throw new Error(`${what}: never; last: ${JSON.stringify(ls)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  try {
    for (let i = 1; i <= 5; i++) await chat.send({ room, text: `h${i}` });
    await page.goto(`http://${proxy.addr}/room.html?room=${room}`);
    await waitLogs((l) => l === "[fresh 3] h3 h4 h5", "the history on entry");
    const want = ["h3", "h4", "h5"];
    for (let i = 1; i <= 30; i++) {
      await chat.send({ room, text: `m${i}` });
      want.push(`m${i}`);
      if (i === 5) {
        await waitLogs((l) => l.endsWith(" m5"), "m1..m5 live");
        proxy.freezeExisting();
      }
      if (i > 5 && i < 20) await new Promise((r) => setTimeout(r, 10));
    }
    const ls = await waitLogs((l) => l.endsWith(" m30"), "m30");
    for (const l of ls) {
      const words = l.split(" ");
      const recovered = words.filter((w) => w.startsWith("[recovered"));
      assert.equal(recovered.length, 1, l);
      const replayed = Number(words[words.indexOf("[recovered") + 1]!.slice(0, -1));
      assert.ok(replayed >= 1, `replayed ${replayed}: the cut lost nothing to recover: ${l}`);
      assert.ok(!l.includes("(gap)") && !l.includes("error"), l);
      assert.deepEqual(words.filter((w) => !w.startsWith("[") && !/^\d+\]$/.test(w)), want, "every message once, in order");
    }
    assert.deepEqual(pageErrors, []);
  } finally {
    sender.close();
    await page.goto("about:blank");
    await proxy.stop();
    await rooms.stop("SIGKILL");
  }
});
