// Conn against a scripted WebSocket: what it hands the socket, and what it
// does not once the socket is closing.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CallIds, Conn, type WebSocketLike } from "../src/conn.js";
import { protoCodec } from "../src/codec.js";
import { Kind } from "../src/gen/protows/v1/protows_pb.js";

// A WebSocket that records what it is sent. Like a browser's, it takes a
// frame in any state without throwing.
class ScriptedSocket implements WebSocketLike {
  static last: ScriptedSocket | undefined;
  binaryType = "";
  readonly protocol = "protows.v1.proto";
  onopen: ((ev: any) => void) | null = null;
  onmessage: ((ev: any) => void) | null = null;
  onclose: ((ev: any) => void) | null = null;
  onerror: ((ev: any) => void) | null = null;
  readyState = 0;
  readonly sent: unknown[] = [];
  constructor() {
    ScriptedSocket.last = this;
  }
  send(data: string | ArrayBufferView | ArrayBufferLike): void {
    this.sent.push(data);
  }
  close(): void {
    this.readyState = 2;
  }
}

function dial(): { conn: Conn; ws: ScriptedSocket } {
  const conn = new Conn(
    { url: "ws://127.0.0.1:1/", codec: protoCodec(), WebSocket: ScriptedSocket, heartbeat: undefined, connectTimeoutMs: 60_000, ids: new CallIds() },
    { opened: () => {}, closed: () => {}, pong: () => {} },
  );
  const ws = ScriptedSocket.last;
  assert.ok(ws !== undefined);
  return { conn, ws };
}

test("a socket that is closing or closed is sent nothing; the calls hear of the close", () => {
  const { conn, ws } = dial();
  try {
    ws.readyState = 1;
    conn.send([{ id: 1, kind: Kind.PING }]);
    assert.equal(ws.sent.length, 1, "open: the frame goes out");
    for (const state of [2, 3]) {
      ws.readyState = state;
      conn.send([{ id: 2, kind: Kind.PING }]);
      conn.sendCancel(3);
      assert.equal(ws.sent.length, 1, `readyState ${state}: a frame went out`);
    }
    // The close event fails the calls registered on the connection, the
    // ones whose frames were not sent with the rest.
    let lost = "";
    conn.calls.set(7, { onEnvelope: () => {}, onLost: (err) => (lost = err.code) });
    ws.onclose?.({ code: 1001, reason: "going away" });
    assert.equal(lost, "unavailable");
    assert.ok(conn.ended);
  } finally {
    conn.abandon(1000, "test over");
  }
});
