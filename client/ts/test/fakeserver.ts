// A small protows server in Node, for faults the Go test server cannot be
// told to produce (a 4008 slow-consumer close, a server PING) and for
// counting connection attempts. It speaks both codecs through the
// runtime's own codecs, which the golden vectors tie to Go's.
import { WebSocketServer, type WebSocket } from "ws";
import type { AddressInfo } from "node:net";
import { create, type DescMessage } from "@bufbuild/protobuf";
import { jsonCodec, protoCodec, type Codec, type WireEnvelope, type WirePosition } from "../src/codec.js";
import { methodId, methodName } from "../src/method.js";
import { AuthService, Kind } from "../src/gen/protows/v1/protows_pb.js";
import { TestService } from "../../../gen/ts/protows/test/v1/test_pb.js";

export interface FakeServer {
  url: string;
  /** Connections accepted so far. */
  connections: number;
  /** Authenticate calls seen, with their tokens. */
  tokens: string[];
  /** The open sockets. */
  sockets: Set<WebSocket>;
  /** Every envelope received, in order. */
  received: WireEnvelope[];
  /** Tokens Authenticate accepts; others get unauthenticated and close 4501. */
  goodTokens: Set<string>;
  /** Date.now() of each accepted connection, in order. */
  connectedAt: number[];
  /**
   * When set, answers Count requests instead of the default (a message
   * every 20 ms): `connection` is the connection's number (from 1).
   */
  onCount?: (call: CountCall) => void;
  /** When true, Echo requests get no answer (they are still recorded). */
  muteEcho?: boolean;
  /** The next this many Echo requests get ERROR unavailable. */
  echoUnavailable?: number;
  /** Sends a frame to every socket. */
  broadcast(envs: WireEnvelope[]): void;
  /** Closes every socket with code. */
  closeAll(code: number, reason?: string): void;
  stop(): Promise<void>;
}

/** A Count request the test scripts through FakeServer.onCount. */
export interface CountCall {
  readonly id: number;
  readonly connection: number;
  /** The REQUEST, whose `resume` says where the client wants to start. */
  readonly request: WireEnvelope;
  /** A STREAM_MESSAGE of this call carrying CountResponse{n} and seq (0: none). */
  message(n: number, seq: number): WireEnvelope;
  /** A STREAM_POSITION of this call (docs/PROTOCOL.md section 14). */
  position(p: WirePosition): WireEnvelope;
  /** Sends envs as one frame. */
  send(envs: WireEnvelope[]): void;
  /** Closes the connection with code. */
  close(code: number, reason?: string): void;
}

const methods = [
  TestService.method.echo,
  TestService.method.count,
  TestService.method.whoami,
  AuthService.method.authenticate,
];

export async function startFake(): Promise<FakeServer> {
  const wss = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    handleProtocols: (protocols) => {
      for (const p of protocols) if (p === "protows.v1.proto" || p === "protows.v1.json") return p;
      return false;
    },
  });
  await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
  const port = (wss.address() as AddressInfo).port;
  const fake: FakeServer = {
    url: `ws://127.0.0.1:${port}/ws`,
    connections: 0,
    tokens: [],
    sockets: new Set(),
    received: [],
    goodTokens: new Set(),
    connectedAt: [],
    broadcast(envs) {
      for (const s of fake.sockets) {
        const codec = s.protocol === "protows.v1.json" ? jsonCodec() : protoCodec();
        s.send(codec.encodeFrame(envs));
      }
    },
    closeAll(code, reason = "") {
      for (const s of fake.sockets) s.close(code, reason);
    },
    stop() {
      for (const s of fake.sockets) s.terminate();
      return new Promise((resolve) => wss.close(() => resolve()));
    },
  };
  wss.on("connection", (ws) => {
    fake.connections++;
    const connection = fake.connections;
    fake.connectedAt.push(Date.now());
    fake.sockets.add(ws);
    const codec: Codec = ws.protocol === "protows.v1.json" ? jsonCodec() : protoCodec();
    const subject = { value: "" };
    const timers = new Map<number, ReturnType<typeof setInterval>>();
    ws.on("close", () => {
      fake.sockets.delete(ws);
      for (const t of timers.values()) clearInterval(t);
    });
    const send = (e: WireEnvelope): void => void ws.send(codec.encodeFrame([e]));
    const reply = <D extends DescMessage>(id: number, schema: D, init: object): void =>
      send({ id, kind: Kind.REPLY, payload: codec.encodePayload(schema, create(schema, init as never)) });
    ws.on("message", (data, isBinary) => {
      const envs = codec.decodeFrame(isBinary ? new Uint8Array(data as Buffer) : data.toString());
      for (const e of envs) {
        fake.received.push(e);
        if (e.kind === Kind.PING) {
          send({ id: e.id, kind: Kind.PONG });
          continue;
        }
        if (e.kind === Kind.CANCEL) {
          const t = timers.get(e.id);
          if (t !== undefined) {
            clearInterval(t);
            timers.delete(e.id);
            send({ id: e.id, kind: Kind.STREAM_END, error: { code: 1, message: "canceled" } });
          }
          continue;
        }
        if (e.kind !== Kind.REQUEST) continue;
        const m = methods.find((m) => methodName(m) === e.method || methodId(methodName(m)) === e.methodId);
        if (m === undefined) {
          send({ id: e.id, kind: Kind.ERROR, error: { code: 12, message: `unknown method` } });
          continue;
        }
        const req = codec.decodePayload(m.input, e.payload) as never;
        switch (m) {
          case AuthService.method.authenticate: {
            const token = (req as { token: string }).token;
            fake.tokens.push(token);
            if (fake.goodTokens.has(token)) {
              subject.value = token;
              reply(e.id, m.output, { subject: token, expiresAt: 0n });
            } else {
              send({ id: e.id, kind: Kind.ERROR, error: { code: 16, message: "bad token" } });
              ws.close(4501, "authentication failed");
            }
            break;
          }
          case TestService.method.echo:
            if (fake.muteEcho === true) break;
            if ((fake.echoUnavailable ?? 0) > 0) {
              fake.echoUnavailable!--;
              send({ id: e.id, kind: Kind.ERROR, error: { code: 14, message: "try again" } });
              break;
            }
            // Echoes the request metadata as REPLY metadata, as Go's fake does.
            send({
              id: e.id,
              kind: Kind.REPLY,
              payload: codec.encodePayload(m.output, create(m.output, { text: (req as { text: string }).text })),
              ...(e.metadata !== undefined ? { metadata: e.metadata } : {}),
            });
            break;
          case TestService.method.whoami:
            reply(e.id, m.output, { subject: subject.value, subprotocol: ws.protocol });
            break;
          case TestService.method.count: {
            if (fake.onCount !== undefined) {
              const id = e.id;
              fake.onCount({
                id,
                connection,
                request: e,
                position: (position) => ({ id, kind: Kind.STREAM_POSITION, position }),
                message: (n, seq) => ({
                  id,
                  kind: Kind.STREAM_MESSAGE,
                  payload: codec.encodePayload(m.output, create(m.output, { n })),
                  ...(seq !== 0 ? { seq } : {}),
                }),
                send: (envs) => ws.send(codec.encodeFrame(envs)),
                close: (code, reason = "") => ws.close(code, reason),
              });
              break;
            }
            let n = 0;
            const t = setInterval(() => {
              n++;
              send({ id: e.id, kind: Kind.STREAM_MESSAGE, payload: codec.encodePayload(m.output, create(m.output, { n })) });
            }, 20);
            timers.set(e.id, t);
            break;
          }
        }
      }
    });
  });
  return fake;
}
