// The TypeScript runtime's driver in a browser page: chromium.ts passes
// each command to window.protowsDriver and receives each event through
// window.protowsEmit. The page uses the browser's own WebSocket.
import { Driver, type Command } from "./driver.js";

declare global {
  interface Window {
    protowsEmit(line: string): void;
    protowsDriver(cmd: Command): void;
  }
}

const driver = new Driver((ev) => window.protowsEmit(JSON.stringify(ev)));
window.protowsDriver = (cmd) => driver.handle(cmd);
driver.ready(`typescript ${navigator.userAgent}`);
