// Packaging: `npm pack` of @protows/client holds the build, the sources and
// the README and nothing else, and installs into a fresh scratch project
// (with generated code, as a user has it) that imports the package root and
// the ./protocol subpath, type-checks under strict TypeScript (NodeNext and
// bundler resolution), and calls the Go server from Node.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { GoServer } from "./goserver.js";
import { methodId } from "../src/protocol.js";
import { pkgDir, repoRoot } from "./repo.js";

const scratch = mkdtempSync(join(tmpdir(), "protows-pack-"));
let server: GoServer | undefined;

after(async () => {
  await server?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

function run(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

test("npm pack installs, type-checks and calls the server", async () => {
  const packed = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", scratch], pkgDir)) as [
    { filename: string; files: { path: string }[] },
  ];
  const files = packed[0].files.map((f) => f.path);
  for (const want of [
    "package.json",
    "README.md",
    "dist/index.js",
    "dist/index.d.ts",
    "dist/protocol.js",
    "dist/protocol.d.ts",
    "dist/indexeddb.js",
    "dist/indexeddb.d.ts",
    "dist/gen/protows/v1/protows_pb.js",
    "src/client.ts",
    "src/protocol.ts",
  ]) {
    assert.ok(files.includes(want), `${want} is in the package: ${files.join(", ")}`);
  }
  assert.ok(!files.some((f) => f.startsWith("test/") || f.startsWith("build-test/") || f.startsWith("scripts/")), "no tests in the package");
  // Only the sources, their build, and the package's own files: a build
  // leftover of a deleted module or a tsconfig would show here.
  const sources = new Set(files.filter((f) => f.startsWith("src/") && f.endsWith(".ts")).map((f) => f.slice("src/".length, -".ts".length)));
  for (const f of files) {
    const built = /^dist\/(.+)\.(js|d\.ts|js\.map)$/.exec(f);
    if (built !== null) {
      assert.ok(sources.has(built[1]!), `${f} is the build of a source file`);
    } else {
      assert.ok(f.startsWith("src/") || ["package.json", "README.md"].includes(f), `unexpected file in the package: ${f}`);
    }
  }
  const manifest = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")) as {
    license?: string;
    exports?: Record<string, { types?: string; default?: string }>;
  };
  assert.equal(manifest.license, "Apache-2.0");
  for (const [entry, want] of [
    [".", "index"],
    ["./protocol", "protocol"],
    ["./indexeddb", "indexeddb"],
  ] as const) {
    assert.deepEqual(manifest.exports?.[entry], { types: `./dist/${want}.d.ts`, default: `./dist/${want}.js` }, `exports["${entry}"]`);
  }

  const app = join(scratch, "app");
  mkdirSync(join(app, "gen"), { recursive: true });
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "scratch", private: true, type: "module" }));
  run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", join(scratch, packed[0].filename)], app);
  // The generated code a user would have: protoc-gen-es messages and the
  // protoc-gen-protows-es client.
  for (const f of readdirSync(join(repoRoot, "gen", "ts", "protows", "test", "v1"))) {
    copyFileSync(join(repoRoot, "gen", "ts", "protows", "test", "v1", f), join(app, "gen", f));
  }
  server = await GoServer.start();
  writeFileSync(
    join(app, "main.ts"),
    `import { Client, CloseCode, ProtowsError, createClient } from "@protows/client";
import { Kind, closeAction, methodId, protoCodec, type WireEnvelope } from "@protows/client/protocol";
import { indexedDBStorage } from "@protows/client/indexeddb";
import { TestService } from "./gen/test_pb.js";
import { TestServiceClient } from "./gen/test_protows.js";

const client = new Client({ url: "${server.url}", codec: "json" });
const svc = new TestServiceClient(client);
const res = await svc.echo({ text: "packed" }, { exactlyOnce: true });
// The indexeddb subpath resolves and type-checks (Node has no IndexedDB).
const storage: typeof indexedDBStorage = indexedDBStorage;
const who = await svc.whoami({});
let code = "";
try {
  await svc.fail({ code: 5 });
} catch (err) {
  code = err instanceof ProtowsError ? err.code : "?";
}
const ns: number[] = [];
for await (const m of svc.count({ count: 2 })) ns.push(m.n);
// Without the generated class: the service descriptor.
const direct = createClient(TestService, client);
const again = await direct.echo({ text: "direct" });
client.close();
// The protocol subpath.
const env: WireEnvelope = { id: 1, kind: Kind.REQUEST, methodId: methodId("/protows.test.v1.TestService/Echo") };
const frame = protoCodec().encodeFrame([env]);
console.log(res.text, who.subprotocol, code, ns.join(","), again.text);
console.log(env.methodId!.toString(16), frame instanceof Uint8Array, closeAction(CloseCode.TokenExpired), typeof storage);
`,
  );
  const compilerOptions = { target: "ES2022", strict: true, lib: ["ES2022", "DOM"], types: [] };
  writeFileSync(
    join(app, "tsconfig.json"),
    JSON.stringify({ compilerOptions: { ...compilerOptions, module: "NodeNext", moduleResolution: "NodeNext", outDir: "out" }, include: ["main.ts", "gen"] }),
  );
  // Bundlers resolve the exports with other conditions: the types must be found there too.
  writeFileSync(
    join(app, "tsconfig.bundler.json"),
    JSON.stringify({ compilerOptions: { ...compilerOptions, module: "ESNext", moduleResolution: "Bundler", noEmit: true }, include: ["main.ts", "gen"] }),
  );
  const tsc = join(repoRoot, "node_modules", "typescript", "bin", "tsc");
  run(process.execPath, [tsc, "-p", "tsconfig.bundler.json"], app);
  run(process.execPath, [tsc, "-p", "."], app);

  // Node 20 has WebSocket behind a flag (Node 22: always): the scratch app
  // uses the global one, as a browser app would.
  const out = run(process.execPath, ["--experimental-websocket", "--no-warnings", "out/main.js"], app);
  const echoId = methodId("/protows.test.v1.TestService/Echo").toString(16);
  assert.equal(out.trim(), `packed protows.v1.json not_found 1,2 direct\n${echoId} true refresh function`);
});
