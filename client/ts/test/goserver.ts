// Starts cmd/protows-testserver, the real Go server, for the tests (or
// another Go server that prints the same first line: test/roomserver).
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pkgDir, repoRoot } from "./repo.js";

const binaries = new Map<string, string>();
// The server logs (handler panics the tests provoke, say) go to stderr only
// with PROTOWS_TEST_VERBOSE=1.
const verbose = process.env.PROTOWS_TEST_VERBOSE === "1";

/** The Go package of the default server. */
export const testServerPkg = "./cmd/protows-testserver";
/** The Go package of the server of a room with history. */
export const roomServerPkg = "./client/ts/test/roomserver";

/** buildServer builds a server package once per test process (go build is incremental). */
export function buildServer(pkg = testServerPkg): string {
  let binary = binaries.get(pkg);
  if (binary === undefined) {
    binary = join(pkgDir, "build-test", pkg.slice(pkg.lastIndexOf("/") + 1));
    execFileSync("go", ["build", "-o", binary, pkg], { cwd: repoRoot, stdio: "inherit" });
    binaries.set(pkg, binary);
  }
  return binary;
}

/** A running test server. */
export class GoServer {
  #proc: ChildProcess | undefined;
  #exited: Promise<number | null> = Promise.resolve(null);
  readonly args: string[];
  readonly #pkg: string;
  /** host:port, fixed after the first start so that restarts keep it. */
  addr = "127.0.0.1:0";

  private constructor(args: string[], pkg: string) {
    this.args = args;
    this.#pkg = pkg;
  }

  /** start runs the server of package pkg with the given flags (plus -addr). */
  static async start(args: string[] = [], pkg = testServerPkg): Promise<GoServer> {
    const s = new GoServer(args, pkg);
    await s.#run();
    return s;
  }

  /** The WebSocket URL. */
  get url(): string {
    return `ws://${this.addr}/ws`;
  }

  /** The HTTP base URL. */
  get httpUrl(): string {
    return `http://${this.addr}`;
  }

  async #run(): Promise<void> {
    const proc = spawn(buildServer(this.#pkg), ["-addr", this.addr, ...this.args], { stdio: ["ignore", "pipe", verbose ? "inherit" : "ignore"] });
    this.#proc = proc;
    this.#exited = new Promise((resolve) => proc.once("exit", (code) => resolve(code)));
    const lines = createInterface({ input: proc.stdout! });
    const addr = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("test server did not start within 20 s")), 20_000);
      lines.once("line", (line) => {
        clearTimeout(timer);
        const m = /^listening on http:\/\/(\S+)$/.exec(line);
        if (m === null) reject(new Error(`unexpected first line from the test server: ${line}`));
        else resolve(m[1]!);
      });
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`test server exited with ${code}`));
      });
    });
    lines.close();
    this.addr = addr;
  }

  /** stop ends the server: SIGTERM shuts it down gracefully (1001), SIGKILL drops every connection. */
  async stop(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<number | null> {
    const proc = this.#proc;
    if (proc === undefined) return null;
    this.#proc = undefined;
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    return this.#exited;
  }

  /** restart stops the server and starts it again on the same address. */
  async restart(signal: "SIGTERM" | "SIGKILL" = "SIGKILL"): Promise<void> {
    await this.stop(signal);
    await this.#run();
  }

  /** token mints a JWT (-auth jwt): POST /token?sub=&ttl=. */
  async token(sub: string, ttl: string): Promise<string> {
    const res = await fetch(`${this.httpUrl}/token?sub=${encodeURIComponent(sub)}&ttl=${encodeURIComponent(ttl)}`, { method: "POST" });
    if (!res.ok) throw new Error(`token: HTTP ${res.status}: ${await res.text()}`);
    return res.text();
  }
}
