// Prints the minified and gzipped size of the runtime, alone and with one
// generated client (TestService: protoc-gen-protows-es's client and
// protoc-gen-es's descriptors), bundled by esbuild with protobuf-es
// external. Usage: node scripts/size.mjs [--json]
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import * as esbuild from "esbuild";

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const gen = join(pkgDir, "..", "..", "gen", "ts", "protows", "test", "v1");

async function measure(contents) {
  const out = await esbuild.build({
    stdin: { contents, resolveDir: pkgDir, loader: "ts" },
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    external: ["@bufbuild/protobuf", "@bufbuild/protobuf/*"],
    alias: { "@protows/client": join(pkgDir, "src", "index.ts") },
    logLevel: "warning",
  });
  const code = out.outputFiles[0].contents;
  return { minified: code.length, gzipped: gzipSync(code, { level: 9 }).length };
}

export async function sizes() {
  return {
    runtime: await measure(`export * from "@protows/client";`),
    // Its own subpath: counted apart, bundled only by pages that use it.
    indexedDB: await measure(`export * from ${JSON.stringify(join(pkgDir, "src", "indexeddb.ts"))};`),
    runtimeWithClient: await measure(
      `export { Client, ProtowsError } from "@protows/client";\nexport { TestServiceClient } from ${JSON.stringify(join(gen, "test_protows.js"))};`,
    ),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const s = await sizes();
  if (process.argv.includes("--json")) {
    console.log(JSON.stringify(s));
  } else {
    for (const [name, { minified, gzipped }] of Object.entries(s)) {
      console.log(`${name}: ${minified} bytes minified, ${gzipped} bytes gzipped`);
    }
  }
}
