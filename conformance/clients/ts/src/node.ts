// The TypeScript runtime's driver in Node.js: commands on stdin, events on
// stdout, one JSON object a line (docs/CONFORMANCE.md).
import { createInterface } from "node:readline";
import WebSocket from "ws";
import type { WebSocketConstructor } from "@protows/client";
import { Driver, type Command } from "./driver.js";

// Node 22 has a WebSocket; Node 20 needs ws's.
const WS = (globalThis.WebSocket ?? WebSocket) as unknown as WebSocketConstructor;
const driver = new Driver((ev) => process.stdout.write(JSON.stringify(ev) + "\n"), WS);
const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const cmd = JSON.parse(line) as Command;
  if (cmd.op === "quit") {
    driver.closeAll();
    lines.close();
    return;
  }
  driver.handle(cmd);
});
lines.on("close", () => {
  driver.closeAll();
  // Let the close frames go out, then end even if a socket lingers.
  setTimeout(() => process.exit(0), 200).unref();
});
driver.ready(`typescript node ${process.version}`);
