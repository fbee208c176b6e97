// Builds the page into dist/ (or the directory given as the first
// argument): src/main.ts bundled with the generated client and
// @protows/client's sources, the stylesheet, and index.html. The Go
// server embeds dist/, which is committed; test/chat.test.mjs checks
// that it matches what this script makes from the sources.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));

/** build writes the page into outdir. */
export async function build(outdir) {
  mkdirSync(outdir, { recursive: true });
  await esbuild.build({
    entryPoints: { app: join(here, "src", "main.ts"), style: join(here, "src", "style.css") },
    outdir,
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    // The runtime's sources rather than its dist/, so that the page
    // builds without building the package first.
    alias: {
      "@protows/client": resolve(here, "../../../client/ts/src/index.ts"),
      "@protows/client/protocol": resolve(here, "../../../client/ts/src/protocol.ts"),
      "@protows/client/indexeddb": resolve(here, "../../../client/ts/src/indexeddb.ts"),
    },
    logLevel: "warning",
  });
  for (const f of ["index.html", "favicon.svg"]) copyFileSync(join(here, "src", f), join(outdir, f));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await build(resolve(process.argv[2] ?? join(here, "dist")));
}
