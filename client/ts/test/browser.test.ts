// Browser end to end: Debian's Chromium, headless, driven by playwright-core,
// loads a page served by the Go test server (-static) that calls
// TestService in both codecs through the browser's WebSocket and an
// interceptor, keeps working across a server restart, and fails fast at a
// wrong path and a closed port. The test asserts what the page shows.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import net, { type AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import * as esbuild from "esbuild";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { GoServer } from "./goserver.js";
import { pkgDir } from "./repo.js";

const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";

let server: GoServer;
let context: BrowserContext;
let page: Page;
let profile: string;
const pageErrors: string[] = [];

before(async () => {
  const www = join(pkgDir, "build-test", "www");
  mkdirSync(www, { recursive: true });
  await esbuild.build({
    entryPoints: [join(pkgDir, "test", "browser", "page.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    outfile: join(www, "app.js"),
    logLevel: "warning",
  });
  writeFileSync(
    join(www, "index.html"),
    '<!doctype html><meta charset="utf-8"><title>protows e2e</title><body><script type="module" src="app.js"></script></body>\n',
  );
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
