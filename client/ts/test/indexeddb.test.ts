// The IndexedDB outbox storage in headless Chromium (as browser.test.ts):
// a page makes an exactly-once call whose reply is lost, and reloads before
// the answer came; the reloaded page finds the call in IndexedDB, sends it
// again with the same key, and reports the answer (onRecoveredCall). The
// handler ran once.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import * as esbuild from "esbuild";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { GoServer } from "./goserver.js";
import { BlackholeProxy } from "./proxy.js";
import { pkgDir } from "./repo.js";

const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";

let server: GoServer;
let proxy: BlackholeProxy;
let context: BrowserContext;
let page: Page;
let profile: string;
const pageErrors: string[] = [];

before(async () => {
  const www = join(pkgDir, "build-test", "www-outbox");
  mkdirSync(www, { recursive: true });
  await esbuild.build({
    entryPoints: [join(pkgDir, "test", "browser", "outbox.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    outfile: join(www, "outbox.js"),
    alias: { "@protows/client/indexeddb": join(pkgDir, "src", "indexeddb.ts"), "@protows/client": join(pkgDir, "src", "index.ts") },
    logLevel: "warning",
  });
  writeFileSync(join(www, "index.html"), '<!doctype html><meta charset="utf-8"><title>outbox</title><body><script type="module" src="outbox.js"></script></body>\n');
  // The page comes from the server, its WebSocket goes through the proxy.
  server = await GoServer.start(["-static", www, "-allow-origin", "*"]);
  proxy = await BlackholeProxy.start(server.addr);
  profile = mkdtempSync(join(tmpdir(), "protows-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (err) => pageErrors.push(String(err)));
});

after(async () => {
  await context?.close();
  await proxy?.stop();
  await server?.stop("SIGKILL");
  if (profile !== undefined) rmSync(profile, { recursive: true, force: true });
});

async function text(id: string): Promise<string> {
  return (await page.locator(`#${id}`).count()) > 0 ? ((await page.locator(`#${id}`).textContent()) ?? "") : "";
}

async function waitText(id: string, pred: (s: string) => boolean): Promise<string> {
  const end = Date.now() + 10_000;
  for (;;) {
    const t = await text(id);
    if (pred(t)) return t;
    if (Date.now() > end) throw new Error(`#${id} never matched; last: ${JSON.stringify(t)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function runsOf(t: string): Promise<number> {
  return Number(await (await fetch(`${server.httpUrl}/runs?text=${encodeURIComponent(t)}`)).text());
}

test("a page reloaded mid-call sends the call again from IndexedDB and gets the answer; the handler ran once", async () => {
  await page.goto(`${server.httpUrl}/index.html?ws=${encodeURIComponent(`ws://${proxy.addr}/ws`)}`);
  await waitText("state", (s) => s === "connected");

  // A call answered normally leaves nothing stored.
  await page.evaluate(() => window.sendOnce("warm-up"));
  assert.equal(await waitText("sent-warm-up", (s) => s !== ""), "ok warm-up");
  assert.equal(await page.evaluate(() => window.storedCount()), 0);

  // The reply is lost and the network stays down: the call is stored, the
  // handler ran, the page has no answer.
  proxy.dropNextReply();
  proxy.refuseNew = true;
  await page.evaluate(() => window.sendOnce("pay-10"));
  const end = Date.now() + 10_000;
  while ((await runsOf("pay-10")) !== 1) {
    assert.ok(Date.now() < end, "the handler never ran");
    await new Promise((r) => setTimeout(r, 20));
  }
  await waitText("state", (s) => s === "reconnecting");
  assert.equal(await page.evaluate(() => window.storedCount()), 1);
  assert.equal(await text("sent-pay-10"), "");

  await page.reload();
  proxy.refuseNew = false;
  assert.equal(await waitText("recovered", (s) => s !== ""), "pay-10 -> pay-10");
  assert.equal(await runsOf("pay-10"), 1, "handler runs");
  assert.equal(await page.evaluate(() => window.storedCount()), 0);
  assert.deepEqual(pageErrors, []);
});
