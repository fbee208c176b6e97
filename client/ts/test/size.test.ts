// A size budget, so that a change that pulls much more into bundles is
// noticed: the runtime with one generated client, minified and gzipped,
// protobuf-es excluded (scripts/size.mjs prints the figures).
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { pkgDir } from "./repo.js";

// 12 KiB since issue 12: client-streaming and bidirectional calls with
// flow control (src/flow.ts, Client.clientStream and bidiStream,
// createClient's two new kinds) took the runtime from 9230 to 10502 bytes
// gzipped, and the measured generated client gained Sum and EchoStream
// (10041 to 11397 with it). Then, landing together:
// - interceptors and fail-fast connects, and the exactly-once outbox
//   (outbox.ts, about 1.4 KB gzipped) with error details and timeoutMs:
//   the outbox is part of the protocol's client behaviour, as in the Go
//   client, so every client carries it; its IndexedDB storage is a subpath
//   of its own (13407 bytes with the client, without issue 13);
// - issue 13, resumable room streams (the codec's resume and position,
//   STREAM_POSITION, the stream's kept position and onRecovery), about
//   0.9 KB gzipped.
const budgetGzipped = 15 * 1024;

test(`runtime + one generated client stays under ${budgetGzipped} bytes gzipped`, async () => {
  const { sizes } = (await import(pathToFileURL(join(pkgDir, "scripts", "size.mjs")).href)) as {
    sizes(): Promise<Record<string, { minified: number; gzipped: number }>>;
  };
  const s = await sizes();
  const { gzipped, minified } = s.runtimeWithClient!;
  assert.ok(gzipped > 2000, `implausibly small: ${gzipped}`);
  assert.ok(gzipped < budgetGzipped, `${gzipped} bytes gzipped (${minified} minified)`);
  // The IndexedDB storage is a subpath of its own: not in the root.
  assert.ok(s.indexedDB!.gzipped < 1024, `indexeddb: ${s.indexedDB!.gzipped} bytes gzipped`);
});
