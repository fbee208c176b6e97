// Tests of the chat demo's page, against the real demo server
// (go build ./examples/chat, which embeds the committed dist/):
//
//   - the committed bundle is what build.mjs makes from the sources;
//   - in Debian's headless Chromium (driven by playwright-core, never a
//     downloaded browser), two pages pick nicknames, join the same room,
//     see each other in the member list and each other's messages, one
//     of them on the JSON codec; with 3 s tokens, the page refreshes its
//     token in band and keeps its connection; a page that closes leaves.
//
// A screenshot of each page goes to test-results/ (gitignored).
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
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
async function open(baseURL, name) {
  const page = await context.newPage();
  page.on("pageerror", (err) => problems.push(`${name}: ${err}`));
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    if (serverDown && msg.text().includes("net::ERR_CONNECTION_REFUSED")) return;
    problems.push(`${name}: console: ${msg.text()}`);
  });
  await page.goto(`${baseURL}/`);
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

  // Bob reads his frames as text: the page reconnects with the JSON
  // codec and joins the room again.
  await bob.selectOption("#codec", "json");
  await waitFor(bob, "#subprotocol", (s) => s === "protows.v1.json");
  assert.match(bob.url(), /\?codec=json$/);
  await waitFor(bob, "#members .name", (s) => s === "alice|bob");
  await waitFor(alice, "#messages .presence", (s) => s.includes("bob left") && s.lastIndexOf("bob joined") > s.indexOf("bob left"));
  await waitFor(alice, "#members .name", (s) => s === "alice|bob");
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
  // pages reconnect (1001), fetch new tokens, join again, say so, and
  // fetch the member list again.
  serverDown = true;
  assert.equal(await demo.stop(), 0, "graceful shutdown exit code");
  const again = await Demo.start(["-addr", url.slice("http://".length), "-token-ttl", `${tokenTTLSeconds}s`]);
  assert.equal(again.urls[0], url);
  for (const page of [alice, bob]) {
    await waitFor(page, "#reconnects", (s) => s === "1");
    await waitFor(page, "#state", (s) => s === "connected");
    await waitFor(page, "#messages .presence", (s) => s.includes("reconnected: messages sent while away are missing"));
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
