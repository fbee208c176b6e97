// Runs the TypeScript runtime's driver in a page of headless Chromium
// (Debian's /usr/bin/chromium, or $CHROMIUM) through playwright-core:
// commands on stdin go to the page, the page's events to stdout.
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const script = readFileSync(join(here, "page.js"), "utf8");

// The page comes from a loopback HTTP server, as an application's page
// would come from its server: Chromium keeps pages of other origins (and
// about:blank) from reaching loopback addresses.
const http = createServer((req, res) => {
  if (req.url === "/page.js") {
    res.writeHead(200, { "content-type": "text/javascript" }).end(script);
    return;
  }
  res
    .writeHead(200, { "content-type": "text/html; charset=utf-8" })
    .end('<!doctype html><meta charset="utf-8"><title>protows conformance</title><script type="module" src="/page.js"></script>\n');
});
await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
const profile = mkdtempSync(join(tmpdir(), "protows-conformance-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = context.pages()[0] ?? (await context.newPage());
page.on("pageerror", (err) => process.stderr.write(`page error: ${String(err)}\n`));
page.on("console", (msg) => {
  if (msg.type() === "error") process.stderr.write(`page console: ${msg.text()}\n`);
});
await page.exposeFunction("protowsEmit", (line: string) => {
  process.stdout.write(line + "\n");
});
await page.goto(`${origin}/`);

// Commands run in the order they came: each waits for the one before.
let queue = Promise.resolve();
let closing = false;
const lines = createInterface({ input: process.stdin });
async function finish(): Promise<void> {
  if (closing) return;
  closing = true;
  await queue;
  await context.close();
  http.close();
  rmSync(profile, { recursive: true, force: true });
  process.exit(0);
}
lines.on("line", (line) => {
  const cmd = JSON.parse(line) as { op: string };
  if (cmd.op === "quit") {
    void finish();
    return;
  }
  queue = queue.then(() => page.evaluate((c) => window.protowsDriver(c as never), cmd)).catch((err: unknown) => {
    process.stderr.write(`driver command failed: ${String(err)}\n`);
  });
});
lines.on("close", () => void finish());
