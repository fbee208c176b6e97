// A size budget, so that a change that pulls much more into bundles is
// noticed: the runtime with one generated client, minified and gzipped,
// protobuf-es excluded (scripts/size.mjs prints the figures).
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { pkgDir } from "./repo.js";

// 10 KiB until resumable room streams (docs/PROTOCOL.md section 14): their
// codec fields took the runtime from 10.1 to 10.6 KiB, and the resume
// logic of the runtime comes on top.
const budgetGzipped = 11 * 1024;

test(`runtime + one generated client stays under ${budgetGzipped} bytes gzipped`, async () => {
  const { sizes } = (await import(pathToFileURL(join(pkgDir, "scripts", "size.mjs")).href)) as {
    sizes(): Promise<Record<string, { minified: number; gzipped: number }>>;
  };
  const s = await sizes();
  const { gzipped, minified } = s.runtimeWithClient!;
  assert.ok(gzipped > 2000, `implausibly small: ${gzipped}`);
  assert.ok(gzipped < budgetGzipped, `${gzipped} bytes gzipped (${minified} minified)`);
});
