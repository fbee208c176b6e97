// Paths shared by the tests: they run from build-test/, compiled.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 10; i++) {
    if (existsSync(join(dir, "go.mod")) && existsSync(join(dir, "proto"))) {
      return dir;
    }
    dir = dirname(dir);
  }
  throw new Error("repository root not found");
}

/** The protows repository root. */
export const repoRoot = findRoot();
/** The client/ts package directory. */
export const pkgDir = join(repoRoot, "client", "ts");
