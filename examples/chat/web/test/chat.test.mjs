// Tests of the chat demo's page, against the real demo server
// (go build ./examples/chat, which embeds the committed dist/):
//
//   - the committed bundle is what build.mjs makes from the sources;
//   - in Debian's headless Chromium (driven by playwright-core, never a
//     downloaded browser), two pages pick nicknames, join the same room,
//     see each other in the member list and each other's messages, one
//     of them switching to the JSON codec without the other seeing it
//     leave and join; with 3 s tokens, the page refreshes its token in
//     band and keeps its connection; a page that closes leaves;
//   - typing indicators over one bidirectional call (ChatService.Typing):
//     what one page types shows as "alice is typing…" on the other, goes
//     when she sends or leaves, and comes back after a server restart (the
//     page opens the call again, as bidirectional calls are not resumed);
//   - the frame inspector shows each frame's size in both codecs, exactly
//     as each codec writes it, and Protobuf's is the smaller;
//   - the page fits a 390 px phone and a 1280 px desktop without
//     scrolling sideways;
//   - GET /metrics serves the transport's figures;
//   - messages are sent exactly once: one typed while the page's network
//     is down is delivered once when it returns; one whose reply a proxy
//     drops is sent again and shown once; one whose page reloads before
//     the answer is sent again from IndexedDB, shown once, and the
//     reloaded page reports it delivered.
//   - a page entering a room shows its last 50 messages; one whose
//     connection drops (a proxy that goes away) comes back saying
//     "recovered N messages" and shows them, in order, once; after a
//     server restart (history in memory: a new epoch) it says "some
//     messages were lost".
//
// Screenshots go to test-results/ (gitignored); the test prints their paths.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import net from "node:net";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { build } from "../build.mjs";

const webDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const repoRoot = resolve(webDir, "../../..");
const results = join(webDir, "test-results");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const verbose = process.env.PROTOWS_TEST_VERBOSE === "1";
const tokenTTLSeconds = 3;

test("the committed bundle (dist/) matches the sources", async () => {
  const fresh = mkdtempSync(join(tmpdir(), "protows-chat-dist-"));
  try {
    await build(fresh);
    const committed = join(webDir, "dist");
    assert.deepEqual(readdirSync(committed).sort(), readdirSync(fresh).sort(), "dist/ has other files than a build");
    for (const f of readdirSync(fresh)) {
      assert.ok(
        readFileSync(join(committed, f)).equals(readFileSync(join(fresh, f))),
        `dist/${f} is stale: run npm run build -w examples/chat/web and commit examples/chat/web/dist`,
      );
    }
  } finally {
    rmSync(fresh, { recursive: true, force: true });
  }
});

/** A running demo binary and the URLs of its nodes. */
class Demo {
  /** @type {import("node:child_process").ChildProcess} */
  proc;
  /** @type {string[]} */
  urls = [];

  /** start runs the binary with args and waits for its n node lines. */
  static async start(args, n = 1) {
    const d = new Demo();
    d.proc = spawn(bin, args, { stdio: ["ignore", "pipe", verbose ? "inherit" : "ignore"] });
    const proc = d.proc;
    await new Promise((resolveStart, reject) => {
      const timer = setTimeout(() => reject(new Error("the demo did not start within 20 s")), 20_000);
      const lines = createInterface({ input: proc.stdout });
      lines.on("line", (line) => {
        const m = /^chat: node \S+: open (http:\/\/127\.0\.0\.1:\d+)\//.exec(line);
        if (m !== null) d.urls.push(m[1]);
        if (d.urls.length === n) {
          clearTimeout(timer);
          resolveStart();
        }
      });
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`the demo exited with ${code}`));
      });
    });
    demos.add(d);
    return d;
  }

  /** stop shuts the demo down gracefully (SIGTERM) and checks it exits cleanly. */
  async stop() {
    demos.delete(this);
    if (this.proc.exitCode !== null) return this.proc.exitCode;
    const exited = new Promise((r) => this.proc.once("exit", (code) => r(code)));
    this.proc.kill("SIGTERM");
    return exited;
  }
}

const demos = new Set();
let bin = "";
/** @type {import("playwright-core").BrowserContext | undefined} */
let context;
let profile = "";
let work = "";
const problems = [];
// While a test has the server down on purpose, the browser logs each
// reconnect attempt that finds no listener as a console error; those are
// expected then (the page backs off and retries) and only then.
let serverDown = false;

before(async () => {
  work = mkdtempSync(join(tmpdir(), "protows-chat-test-"));
  bin = join(work, "chat");
  execFileSync("go", ["build", "-o", bin, "./examples/chat"], { cwd: repoRoot, stdio: "inherit" });
  profile = mkdtempSync(join(tmpdir(), "protows-chat-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1100, height: 640 },
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
});

after(async () => {
  await context?.close();
  for (const d of [...demos]) await d.stop();
  for (const dir of [profile, work]) if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

/** Opens a page and records its errors (CSP violations are console errors). */
async function open(baseURL, name, { query = "", viewport } = {}) {
  const page = await context.newPage();
  if (viewport !== undefined) await page.setViewportSize(viewport);
  page.on("pageerror", (err) => problems.push(`${name}: ${err}`));
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    if (serverDown && /net::ERR_CONNECTION_REFUSED|net::ERR_CONNECTION_RESET|WebSocket connection to .* failed/.test(msg.text())) return;
    problems.push(`${name}: console: ${msg.text()}`);
  });
  await page.goto(`${baseURL}/${query}`);
  await page.fill("#name", name);
  await page.click("#login-form button");
  await waitFor(page, "#state", (s) => s === "connected");
  return page;
}

/** Waits until pred holds for the text of selector (all matches joined by "|"). */
async function waitFor(page, selector, pred, timeoutMs = 10_000) {
  const end = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    last = (await page.locator(selector).allTextContents()).join("|");
    if (pred(last)) return last;
    if (Date.now() > end) throw new Error(`${selector} never matched; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Fetches GET /metrics and returns the samples by series ("name{labels}"). */
async function metrics(baseURL) {
  const res = await fetch(`${baseURL}/metrics`);
  assert.equal(res.status, 200, "GET /metrics");
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
  const samples = new Map();
  for (const line of (await res.text()).split("\n")) {
    const m = /^(\w+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m !== null) samples.set(m[1], Number(m[2]));
  }
  return samples;
}

/** Polls /metrics until the series has the value. */
async function waitForMetric(baseURL, series, value, timeoutMs = 10_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const got = (await metrics(baseURL)).get(series);
    if (got === value) return;
    if (Date.now() > end) throw new Error(`${series} is ${got}, want ${value}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("two pages chat in one room, see each other, switch codec, refresh tokens, survive a restart", async () => {
  const demo = await Demo.start(["-addr", "127.0.0.1:0", "-token-ttl", `${tokenTTLSeconds}s`]);
  const url = demo.urls[0];

  // The server refuses a blank nickname and the form says why.
  const login = await context.newPage();
  await login.goto(`${url}/`);
  await login.fill("#name", "   ");
  await login.click("#login-form button");
  await waitFor(login, "#login-error", (s) => s.includes("name must be 1 to 32 characters"));
  assert.equal(await login.isHidden("#chat"), true);
  mkdirSync(results, { recursive: true });
  await login.screenshot({ path: join(results, "chat-login.png") });
  await login.close();
  const alice = await open(url, "alice");
  const t0 = Date.now();
  const bob = await open(url, "bob");

  for (const page of [alice, bob]) {
    await waitFor(page, "#members .name", (s) => s === "alice|bob");
    await waitFor(page, "#room-title", (s) => s === "lobby");
    assert.equal(await page.textContent("#subprotocol"), "protows.v1.proto");
  }
  assert.equal(await alice.textContent("#me"), "alice");
  await waitFor(alice, "#messages .presence", (s) => s.includes("bob joined"));

  await alice.fill("#text", "before the switch");
  await alice.press("#text", "Enter");
  for (const page of [alice, bob]) await waitFor(page, "#messages .message .text", (s) => s.includes("before the switch"));
  const alicePresence = await alice.locator("#messages .presence").allTextContents();
  const bobPresence = await bob.locator("#messages .presence").allTextContents();
  assert.ok(alicePresence.some((l) => l.includes("bob joined")), `alice saw bob come: ${alicePresence}`);

  // Bob reads his frames as text: the page moves to a JSON connection,
  // which joins the room before the Protobuf one closes; alice sees
  // nothing of it, and bob keeps his conversation.
  await waitForMetric(url, 'protows_connections_open{subprotocol="protows.v1.proto"}', 2);
  await bob.selectOption("#codec", "json");
  await waitFor(bob, "#subprotocol", (s) => s === "protows.v1.json");
  assert.match(bob.url(), /\?codec=json$/);
  // The server counts a connection closed once its calls ended: bob's
  // old membership is gone, and presence had its say.
  await waitForMetric(url, 'protows_connections_open{subprotocol="protows.v1.proto"}', 1);
  await waitForMetric(url, 'protows_connections_open{subprotocol="protows.v1.json"}', 1);
  await bob.waitForSelector("#send:not([disabled])");
  await bob.fill("#text", "switched to JSON");
  await bob.press("#text", "Enter");
  for (const page of [alice, bob]) await waitFor(page, "#messages .message .text", (s) => s.includes("switched to JSON"));
  assert.deepEqual(await alice.locator("#messages .presence").allTextContents(), alicePresence, "alice saw bob's codec switch");
  assert.deepEqual(await bob.locator("#messages .presence").allTextContents(), bobPresence, "bob's page announced its own switch");
  assert.ok((await bob.locator("#messages .message .text").allTextContents()).includes("before the switch"), "bob lost the conversation");
  for (const page of [alice, bob]) await waitFor(page, "#members .name", (s) => s === "alice|bob");
  assert.equal(await bob.textContent("#reconnects"), "0", "a codec switch is not a reconnect");

  await alice.fill("#text", "hello from alice <b>not bold</b>");
  await alice.press("#text", "Enter");
  await bob.waitForSelector("#send:not([disabled])");
  await bob.fill("#text", "hi alice, in JSON «ü»");
  await bob.click("#send");
  for (const page of [alice, bob]) {
    await waitFor(page, "#messages .message .text", (s) => s.includes("hello from alice <b>not bold</b>") && s.includes("hi alice, in JSON «ü»"));
    // Text is never HTML.
    assert.equal(await page.locator("#messages b").count(), 0);
  }
  assert.equal(await alice.textContent("#messages .message.mine .author"), "alice");
  await waitFor(alice, "#rooms .room.current", (s) => s === "lobby2");

  // The tokens live 3 s: alice's page fetched new ones in band and her
  // connection outlived them.
  const wait = t0 + (tokenTTLSeconds + 1) * 1000 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  assert.ok(Number(await alice.textContent("#tokens")) >= 2, `tokens fetched: ${await alice.textContent("#tokens")}`);
  assert.equal(await alice.textContent("#reconnects"), "0");
  assert.equal(await alice.textContent("#state"), "connected");
  await alice.fill("#text", "after the refresh");
  await alice.press("#text", "Enter");
  for (const page of [alice, bob]) await waitFor(page, "#messages .message .text", (s) => s.includes("after the refresh"));

  mkdirSync(results, { recursive: true });
  await alice.screenshot({ path: join(results, "chat-alice-proto.png") });
  await bob.screenshot({ path: join(results, "chat-bob-json.png") });

  // The server restarts on the same address with a new token key: the
  // pages reconnect (1001), fetch new tokens, join again, and fetch the
  // member list again. The rooms' history was in the server's memory:
  // the pages say that what was sent meanwhile may be lost.
  serverDown = true;
  assert.equal(await demo.stop(), 0, "graceful shutdown exit code");
  const again = await Demo.start(["-addr", url.slice("http://".length), "-token-ttl", `${tokenTTLSeconds}s`]);
  assert.equal(again.urls[0], url);
  for (const page of [alice, bob]) {
    await waitFor(page, "#reconnects", (s) => s === "1");
    await waitFor(page, "#state", (s) => s === "connected");
    await waitFor(page, "#messages .presence", (s) => s.includes("some messages were lost"));
    // Ordered by join time, which the reconnects shuffled.
    await waitFor(page, "#members .name", (s) => s.split("|").sort().join("|") === "alice|bob");
  }
  serverDown = false;
  await bob.waitForSelector("#send:not([disabled])");
  await bob.fill("#text", "after the restart");
  await bob.press("#text", "Enter");
  for (const page of [alice, bob]) await waitFor(page, "#messages .message .text", (s) => s.includes("after the restart"));

  // Bob closes his page: his membership ends with the connection.
  await bob.close();
  await waitFor(alice, "#members .name", (s) => s === "alice");
  await alice.close();
  assert.equal(await again.stop(), 0);
  assert.deepEqual(problems, []);
});

test("typing indicators between two pages over one bidirectional stream", async () => {
  problems.length = 0;
  const demo = await Demo.start(["-addr", "127.0.0.1:0"]);
  const url = demo.urls[0];
  const alice = await open(url, "alice");
  const bob = await open(url, "bob", { query: "?codec=json" });
  for (const page of [alice, bob]) await waitFor(page, "#members .name", (s) => s === "alice|bob");

  // fill() fires the input event, as typing does.
  await alice.fill("#text", "hel");
  await waitFor(bob, "#typing", (s) => s === "alice is typing…");
  assert.equal(await alice.textContent("#typing"), "", "alice sees herself typing");
  // Both type: each sees the other only.
  await bob.fill("#text", "ye");
  await waitFor(alice, "#typing", (s) => s === "bob is typing…");
  await waitFor(bob, "#typing", (s) => s === "alice is typing…");
  // Sending ends alice's typing.
  await alice.fill("#text", "hello");
  await alice.press("#text", "Enter");
  await waitFor(bob, "#messages .message .text", (s) => s.includes("hello"));
  await waitFor(bob, "#typing", (s) => s === "");
  // The frames of the call: one Typing REQUEST per page, then messages both ways.
  // The inspector shows the call: the server's CREDIT that opens it, and
  // the page's messages measured in both codecs.
  assert.ok((await alice.locator('#frame-rows tr[data-kinds~="credit"][data-methods~="Typing"]').count()) >= 1, "no CREDIT of Typing in the inspector");
  const sentTyping = alice.locator('#frame-rows tr[data-dir="sent"][data-kinds~="stream_message"][data-methods~="Typing"]');
  assert.ok((await sentTyping.count()) >= 2, "the page's typing messages are not in the inspector");
  for (const c of ["proto", "json"]) {
    assert.match((await sentTyping.first().locator(`td[data-codec="${c}"]`).getAttribute("data-bytes")) ?? "", /^\d+$/, `no ${c} size`);
  }

  // A restart ends the call with unavailable; the page opens it again.
  serverDown = true;
  assert.equal(await demo.stop(), 0);
  const again = await Demo.start(["-addr", url.slice("http://".length)]);
  for (const page of [alice, bob]) {
    await waitFor(page, "#reconnects", (s) => s === "1");
    await waitFor(page, "#members .name", (s) => s.split("|").sort().join("|") === "alice|bob");
  }
  serverDown = false;
  // Bob's indicator of alice was from before the restart: cleared with the call.
  await alice.fill("#text", "");
  await alice.fill("#text", "again");
  await waitFor(bob, "#typing", (s) => s === "alice is typing…", 15_000);

  // Alice closes her page mid-sentence: her call's end says she stopped.
  await alice.close();
  await waitFor(bob, "#typing", (s) => s === "");
  await bob.close();
  assert.equal(await again.stop(), 0);
  assert.deepEqual(problems, []);
});

/**
 * NetProxy is a page's network: a TCP proxy to the demo that the test can
 * break. blockWebSockets resets new connections that open a WebSocket
 * (pages and tokens still load), cutAll resets the open ones, and
 * dropNextReply discards the next bytes the server sends and cuts that
 * connection (the answer to a request never arrives).
 */
class NetProxy {
  blockWebSockets = false;
  dropNextReply = false;
  /** The demo's host:port, set once it runs. */
  target = "";
  #sockets = new Set();
  #server;

  static async start() {
    const p = new NetProxy();
    p.#server = net.createServer((down) => {
      down.on("error", () => {});
      down.once("data", (first) => {
        if (p.blockWebSockets && /^upgrade: *websocket/im.test(first.toString("latin1"))) {
          down.resetAndDestroy();
          return;
        }
        const t = p.target;
        const up = net.connect(Number(t.slice(t.lastIndexOf(":") + 1)), t.slice(0, t.lastIndexOf(":")));
        up.on("error", () => {});
        for (const s of [down, up]) {
          p.#sockets.add(s);
          s.on("close", () => p.#sockets.delete(s));
        }
        up.write(first);
        down.on("data", (b) => up.write(b));
        up.on("data", (b) => {
          if (p.dropNextReply) {
            p.dropNextReply = false;
            down.resetAndDestroy();
            up.destroy();
            return;
          }
          down.write(b);
        });
        down.on("close", () => up.destroy());
        up.on("close", () => down.destroy());
      });
    });
    await new Promise((r) => p.#server.listen(0, "127.0.0.1", r));
    return p;
  }

  get url() {
    return `http://127.0.0.1:${this.#server.address().port}`;
  }

  cutAll() {
    for (const s of this.#sockets) s.resetAndDestroy();
  }

  async stop() {
    this.cutAll();
    await new Promise((r) => this.#server.close(() => r()));
  }
}


const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The number of messages whose text is text on page. */
async function countMessages(page, text) {
  return (await page.locator("#messages .message .text").allTextContents()).filter((t) => t === text).length;
}

/**
 * Puts text in the page's message field without an input event, so that
 * the page sends no typing indicator: dropNextReply must drop the answer
 * to Send, not the broadcast of the page's own Typing message (the typing
 * room echoes it to its sender) that would otherwise come first and cut
 * the connection before Send left.
 */
async function typeQuietly(page, text) {
  await page.$eval("#text", (el, v) => {
    el.value = v;
  }, text);
}

test("messages are sent exactly once: typed while the network is down, a lost reply, a reload mid-call", async () => {
  problems.length = 0;
  // Each page has its own network: alice's breaks, bob's does not. The
  // pages' origins are the proxies'.
  const px = await NetProxy.start();
  const bobNet = await NetProxy.start();
  const demo = await Demo.start(["-addr", "127.0.0.1:0", "-origin", `${px.url},${bobNet.url}`]);
  px.target = bobNet.target = demo.urls[0].slice("http://".length);
  const pages = [];
  try {
    const alice = await open(px.url, "alice");
    const bob = await open(bobNet.url, "bob");
    pages.push(alice, bob);
    for (const page of [alice, bob]) await waitFor(page, "#members .name", (s) => s.split("|").sort().join("|") === "alice|bob");
    await alice.waitForSelector("#send:not([disabled])");

    // The network goes down; alice types a message; it waits.
    serverDown = true;
    px.blockWebSockets = true;
    px.cutAll();
    await waitFor(alice, "#state", (s) => s === "reconnecting");
    await alice.fill("#text", "typed offline");
    await alice.press("#text", "Enter");
    await waitFor(alice, "#unsent", (s) => s === "1");
    await sleep(300);
    assert.equal(await countMessages(bob, "typed offline"), 0, "sent while offline");
    // The network is back: the message is delivered, once, to both.
    px.blockWebSockets = false;
    for (const page of [alice, bob]) await waitFor(page, "#messages .message .text", (s) => s.split("|").includes("typed offline"));
    await waitFor(alice, "#unsent", (s) => s === "0");
    await waitFor(alice, "#state", (s) => s === "connected");
    serverDown = false;
    await sleep(300); // a second delivery would show by now
    for (const page of [alice, bob]) assert.equal(await countMessages(page, "typed offline"), 1);

    // The reply to a message is lost with the connection: the page sends
    // it again with the same key and the room gets it once.
    await alice.waitForSelector("#send:not([disabled])");
    serverDown = true;
    px.dropNextReply = true;
    await typeQuietly(alice, "reply lost");
    await alice.press("#text", "Enter");
    await waitFor(bob, "#messages .message .text", (s) => s.split("|").includes("reply lost"));
    await waitFor(alice, "#reconnects", (s) => s === "2");
    await waitFor(alice, "#state", (s) => s === "connected");
    await waitFor(alice, "#unsent", (s) => s === "0");
    serverDown = false;
    // Alice's stream was cut with the reply, so her page may have missed
    // her own message; it never shows it twice.
    await sleep(300);
    assert.ok((await countMessages(alice, "reply lost")) <= 1, "reply lost twice on alice's page");

    // The page reloads before the answer came, the network still down for
    // WebSockets: the reloaded page finds the message in IndexedDB, sends
    // it again once connected, and reports it delivered; the room got it once.
    await alice.waitForSelector("#send:not([disabled])");
    serverDown = true;
    px.dropNextReply = true;
    px.blockWebSockets = true;
    await typeQuietly(alice, "before the reload");
    await alice.press("#text", "Enter");
    await waitFor(bob, "#messages .message .text", (s) => s.split("|").includes("before the reload"));
    await waitFor(alice, "#state", (s) => s === "reconnecting");
    assert.equal(await alice.textContent("#unsent"), "1");
    await alice.reload();
    await alice.fill("#name", "alice");
    await alice.click("#login-form button");
    await waitFor(alice, "#me", (s) => s === "alice");
    px.blockWebSockets = false;
    await waitFor(alice, "#state", (s) => s === "connected");
    await waitFor(alice, "#messages .presence", (s) => s.includes('delivered after a reload: "before the reload"'));
    serverDown = false;

    await sleep(500); // a second delivery would show by now
    for (const [page, text] of [
      [bob, "typed offline"],
      [bob, "reply lost"],
      [bob, "before the reload"],
    ]) {
      assert.equal(await countMessages(page, text), 1, `${text} on ${page === alice ? "alice" : "bob"}'s page`);
    }
    assert.equal(await alice.textContent("#unsent"), "0");
  } finally {
    for (const page of pages) await page.close();
    await px.stop();
    await bobNet.stop();
    serverDown = false;
  }
  assert.equal(await demo.stop(), 0);
  assert.deepEqual(problems, []);
});

test("pages on two nodes of a cluster share a room through NATS", async () => {
  problems.length = 0;
  const demo = await Demo.start(["-addr", "127.0.0.1:0", "-cluster", "2"], 2);
  const carol = await open(demo.urls[0], "carol");
  const dave = await open(demo.urls[1], "dave");
  assert.equal(await carol.textContent("#node"), "node-1");
  assert.equal(await dave.textContent("#node"), "node-2");
  for (const page of [carol, dave]) {
    await waitFor(page, "#members .name", (s) => s === "carol|dave");
    await waitFor(page, "#members .conn", (s) => s === "node-1|node-2");
  }
  await dave.waitForSelector("#send:not([disabled])");
  await dave.fill("#text", "from node-2");
  await dave.press("#text", "Enter");
  await carol.fill("#text", "from node-1");
  await carol.press("#text", "Enter");
  for (const page of [carol, dave]) {
    await waitFor(page, "#messages .message .text", (s) => s.includes("from node-2") && s.includes("from node-1"));
  }
  // A room made on one node is listed on the other.
  await dave.fill("#room-input", "elsewhere");
  await dave.press("#room-input", "Enter");
  await waitFor(dave, "#room-title", (s) => s === "elsewhere");
  await waitFor(carol, "#rooms .room", (s) => s.includes("elsewhere1"), 15_000);
  mkdirSync(results, { recursive: true });
  await carol.screenshot({ path: join(results, "chat-cluster-node1.png") });
  await carol.close();
  await dave.close();
  assert.equal(await demo.stop(), 0);
  assert.deepEqual(problems, []);
});

/** The bytes of a varint. */
function varint(n) {
  const out = [];
  for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n % 128) | 0x80);
  out.push(n);
  return out;
}

/**
 * The sizes of the frame of a Send request in each codec, written here
 * from docs/PROTOCOL.md (sections 2, 3 and 5) rather than by the codecs
 * under test.
 */
function sendFrameSizes(id, room, text) {
  const r = Buffer.from(room);
  const t = Buffer.from(text);
  const payload = [0x0a, ...varint(r.length), ...r, 0x12, ...varint(t.length), ...t];
  // id, kind REQUEST, method_id (fixed32), payload, idempotency_key (128
  // random bits in base64url: 22 characters), timeout_ms (the time left
  // of the page's 10 minutes: 3 bytes as a varint, 6 digits in JSON)
  const key = "k".repeat(22);
  const envelope = [0x08, ...varint(id), 0x10, 0x01, 0x1d, 0, 0, 0, 0, 0x2a, ...varint(payload.length), ...payload, 0x5a, key.length, ...Buffer.from(key), 0x60, 0x80, 0x80, 0x20];
  const proto = 1 + varint(envelope.length).length + envelope.length;
  const json = Buffer.byteLength(
    JSON.stringify({ id, kind: "request", method: "/examples.chat.v1.ChatService/Send", payload: { room, text }, idempotencyKey: key, timeoutMs: 599999 }),
  );
  return { proto, json };
}

/** The inspector's rows, newest first, as plain objects. */
async function frameRows(page) {
  return page.$$eval("#frame-rows tr", (rows) =>
    rows.map((tr) => {
      const bytes = (c) => {
        const v = tr.querySelector(`td[data-codec="${c}"]`)?.getAttribute("data-bytes");
        return v == null ? undefined : Number(v);
      };
      return {
        dir: tr.dataset.dir,
        wire: tr.dataset.wire,
        kinds: tr.dataset.kinds.split(" "),
        ids: tr.dataset.ids.split(" ").map(Number),
        methods: tr.dataset.methods,
        proto: bytes("proto"),
        json: bytes("json"),
        wireBold: getComputedStyle(tr.querySelector("td.wire")).fontWeight,
      };
    }),
  );
}

/** Asserts that the page does not scroll sideways at its viewport's width. */
async function assertNoSidewaysScroll(page, what) {
  const [scrollWidth, innerWidth] = await page.evaluate(() => [document.scrollingElement.scrollWidth, window.innerWidth]);
  assert.ok(scrollWidth <= innerWidth, `${what}: the page is ${scrollWidth} px wide in a ${innerWidth} px window`);
}

const desktop = { width: 1280, height: 800 };
const phone = { width: 390, height: 844 };

test("the frame inspector compares the codecs; the page fits a phone and a desktop", async (t) => {
  problems.length = 0;
  const demo = await Demo.start(["-addr", "127.0.0.1:0"]);
  const url = demo.urls[0];
  mkdirSync(results, { recursive: true });
  const shots = [];
  const shoot = async (page, name, fullPage = false) => {
    const path = join(results, name);
    await page.screenshot({ path, fullPage });
    shots.push(path);
  };

  // The login form, on a phone.
  const login = await context.newPage();
  await login.setViewportSize(phone);
  await login.goto(`${url}/`);
  await assertNoSidewaysScroll(login, "login at 390 px");
  await shoot(login, "chat-phone-login.png");
  await login.close();

  const erin = await open(url, "erin", { viewport: desktop });
  const frank = await open(url, "frank", { viewport: desktop, query: "?codec=json" });
  assert.equal(await frank.textContent("#subprotocol"), "protows.v1.json");
  for (const page of [erin, frank]) await waitFor(page, "#members .name", (s) => s === "erin|frank");

  const sent = new Map([
    [erin, "Protobuf from erin: «ü» and a long word " + "x".repeat(120)],
    [frank, "JSON from frank, in text frames"],
  ]);
  for (const [page, text] of sent) {
    await page.waitForSelector("#send:not([disabled])");
    await page.fill("#text", text);
    await page.press("#text", "Enter");
  }
  for (const page of [erin, frank]) {
    await waitFor(page, "#messages .message .text", (s) => [...sent.values()].every((text) => s.includes(text)));
  }

  for (const [page, text] of sent) {
    const wire = page === erin ? "proto" : "json";
    const rows = await frameRows(page);
    // The Send request: its bytes on the wire, and in the other codec,
    // are exactly what each codec writes.
    const send = rows.find((r) => r.dir === "sent" && r.methods === "Send");
    assert.ok(send !== undefined, `no Send row among ${JSON.stringify(rows)}`);
    assert.equal(send.wire, wire);
    assert.deepEqual(send.kinds, ["request"]);
    assert.deepEqual({ proto: send.proto, json: send.json }, sendFrameSizes(send.ids[0], "lobby", text), `Send #${send.ids[0]} of ${wire}`);
    assert.ok(send.proto < send.json, `Protobuf ${send.proto} B, JSON ${send.json} B`);
    assert.ok(Number(send.wireBold) >= 600, "the wire's size is bold");
    // The messages of the room and of its typing indicator (alone, or
    // batched with a reply): both sizes, Protobuf the smaller.
    const messages = rows.filter((r) => r.dir === "received" && r.kinds.includes("stream_message"));
    assert.ok(messages.length >= 2, `stream messages: ${JSON.stringify(messages)}`);
    assert.ok(messages.some((r) => r.methods.split(" ").includes("Watch")), "no stream message of Watch");
    for (const r of messages) {
      assert.ok(r.methods.split(" ").some((m) => m === "Watch" || m === "Typing"), `stream message of ${r.methods}`);
      assert.ok(r.proto > 0 && r.proto < r.json, `stream message: Protobuf ${r.proto} B, JSON ${r.json} B`);
    }
    // Every frame was re-encoded, the authentication's included.
    assert.ok(rows.some((r) => r.methods === "Authenticate" && r.dir === "sent"), "no Authenticate row");
    for (const r of rows) assert.ok(r.proto !== undefined && r.json !== undefined, `a row lacks a size: ${JSON.stringify(r)}`);
    const totals = await page.textContent("#frame-totals");
    assert.match(totals, /^\d+ frames: \d+ B in Protobuf, \d+ B in JSON \(Protobuf \d+% smaller\)$/);
  }

  // Desktop and phone: nothing scrolls sideways.
  await assertNoSidewaysScroll(erin, "chat at 1280 px");
  await shoot(erin, "chat-desktop-1280x800.png");
  await shoot(frank, "chat-desktop-1280x800-json.png");
  for (const page of [erin, frank]) await page.setViewportSize(phone);
  await assertNoSidewaysScroll(erin, "chat at 390 px");
  await assertNoSidewaysScroll(frank, "chat (JSON) at 390 px");
  await shoot(erin, "chat-phone-390x844.png");
  await shoot(erin, "chat-phone-390-full.png", true);
  for (const path of shots) t.diagnostic(`screenshot: ${path}`);

  // GET /metrics: the transport's figures, by codec.
  const m = await metrics(url);
  assert.equal(m.get('protows_connections_open{subprotocol="protows.v1.proto"}'), 1);
  assert.equal(m.get('protows_connections_open{subprotocol="protows.v1.json"}'), 1);
  assert.ok((m.get('protows_messages_received_total{subprotocol="protows.v1.json"}') ?? 0) >= 3);
  await erin.close();
  await frank.close();
  assert.equal(await demo.stop(), 0);
  assert.deepEqual(problems, []);
});

/**
 * A TCP proxy whose link goes away and comes back: down() closes every
 * connection and stops listening (the browser gets connection refused,
 * as from a dead server), up() listens again on the same port.
 */
class DropProxy {
  /** @type {net.Server | undefined} */
  server;
  sockets = new Set();
  port = 0;
  /** @type {URL | undefined} the server, set before the first connection */
  target;
  async up() {
    const server = net.createServer((down) => {
      const up = net.connect(Number(this.target.port), this.target.hostname);
      for (const s of [down, up]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => {});
      }
      down.pipe(up);
      up.pipe(down);
      down.on("close", () => up.destroy());
      up.on("close", () => down.destroy());
    });
    await new Promise((r) => server.listen(this.port, "127.0.0.1", r));
    this.port = server.address().port;
    this.server = server;
  }
  async down() {
    const server = this.server;
    this.server = undefined;
    const closed = new Promise((r) => server.close(r));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
  get url() {
    return `http://127.0.0.1:${this.port}`;
  }
}

test("a page shows a room's last 50 messages on entry and recovers what it missed while its connection was down", async () => {
  problems.length = 0;
  // The pages come through proxies (the page's origin is the proxy's):
  // heidi's goes away and comes back, grace's stays.
  const proxy = new DropProxy();
  const stay = new DropProxy();
  for (const p of [proxy, stay]) await p.up();
  const demo = await Demo.start(["-addr", "127.0.0.1:0", "-origin", `${proxy.url},${stay.url}`]);
  for (const p of [proxy, stay]) p.target = new URL(demo.urls[0]);
  const url = stay.url;

  // grace posts 55 messages, one after the other (each shown before the next).
  const grace = await open(url, "grace");
  await grace.waitForSelector("#send:not([disabled])");
  const sent = [];
  for (let i = 1; i <= 55; i++) {
    const text = `n${i}`;
    sent.push(text);
    await grace.fill("#text", text);
    await grace.press("#text", "Enter");
    await waitFor(grace, "#messages .message .text", (s) => s.split("|").at(-1) === text);
  }

  // heidi enters through the proxy: the room's last 50 messages first.
  const heidi = await open(proxy.url, "heidi");
  await waitFor(heidi, "#members .name", (s) => s === "grace|heidi");
  const history = await waitFor(heidi, "#messages .message .text", (s) => s.split("|").length >= 50);
  assert.deepEqual(history.split("|"), sent.slice(5), "the last 50, in order");

  // heidi's link goes away; grace goes on talking; the link comes back.
  serverDown = true;
  await proxy.down();
  await waitFor(heidi, "#state", (s) => s === "reconnecting");
  const missed = ["while heidi was away 1", "while heidi was away 2", "while heidi was away 3"];
  for (const text of missed) {
    await grace.fill("#text", text);
    await grace.press("#text", "Enter");
    await waitFor(grace, "#messages .message .text", (s) => s.split("|").at(-1) === text);
  }
  await proxy.up();
  await waitFor(heidi, "#state", (s) => s === "connected", 15_000);
  await waitFor(heidi, "#messages .presence", (s) => s.includes("recovered 3 messages"));
  serverDown = false;
  const all = (await waitFor(heidi, "#messages .message .text", (s) => s.endsWith(missed[2]))).split("|");
  assert.deepEqual(all, [...sent.slice(5), ...missed], "every missed message once, in order, after the history");
  const notices = await heidi.locator("#messages .presence").allTextContents();
  assert.ok(!notices.some((n) => n.includes("lost")), `notices: ${notices}`);
  // The connection works on: heidi answers.
  await heidi.waitForSelector("#send:not([disabled])");
  await heidi.fill("#text", "back");
  await heidi.press("#text", "Enter");
  await waitFor(grace, "#messages .message .text", (s) => s.endsWith("back"));
  mkdirSync(results, { recursive: true });
  await heidi.screenshot({ path: join(results, "chat-recovered.png") });
  await grace.close();
  await heidi.close();
  for (const p of [proxy, stay]) await p.down();
  assert.equal(await demo.stop(), 0);
  assert.deepEqual(problems, []);
});
