// Packaging: `npm pack` of @protows/client installs into a fresh scratch
// project (with generated code, as a user has it) that type-checks under
// strict TypeScript and calls the Go server from Node.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { GoServer } from "./goserver.js";
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
  for (const want of ["package.json", "dist/index.js", "dist/index.d.ts", "dist/gen/protows/v1/protows_pb.js", "src/client.ts"]) {
    assert.ok(files.includes(want), `${want} is in the package: ${files.join(", ")}`);
  }
  assert.ok(!files.some((f) => f.startsWith("test/") || f.startsWith("build-test/")), "no tests in the package");

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
    `import { Client, ProtowsError } from "@protows/client";
import { TestServiceClient } from "./gen/test_protows.js";

const client = new Client({ url: "${server.url}", codec: "json" });
const svc = new TestServiceClient(client);
const res = await svc.echo({ text: "packed" });
const who = await svc.whoami({});
let code = "";
try {
  await svc.fail({ code: 5 });
} catch (err) {
  code = err instanceof ProtowsError ? err.code : "?";
}
const ns: number[] = [];
for await (const m of svc.count({ count: 2 })) ns.push(m.n);
console.log(res.text, who.subprotocol, code, ns.join(","));
client.close();
`,
  );
  writeFileSync(
    join(app, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, lib: ["ES2022", "DOM"], types: [], outDir: "out" },
      include: ["main.ts", "gen"],
    }),
  );
  run(process.execPath, [join(repoRoot, "node_modules", "typescript", "bin", "tsc"), "-p", "."], app);

  // Node 20 has WebSocket behind a flag (Node 22: always): the scratch app
  // uses the global one, as a browser app would.
  const out = run(process.execPath, ["--experimental-websocket", "--no-warnings", "out/main.js"], app);
  assert.equal(out.trim(), "packed protows.v1.json not_found 1,2");
});
