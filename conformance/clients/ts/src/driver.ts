// The driver of the TypeScript runtime: it turns the driver protocol's
// commands (docs/CONFORMANCE.md) into calls on @protows/client and reports
// what happens as events. The same code runs in Node.js (node.ts) and in
// a browser page (page.ts); only the WebSocket and the transport of the
// lines differ.
import { Client, ProtowsError, type WebSocketConstructor } from "@protows/client";
import { fromJson, toJson, type DescMethod, type DescMethodServerStreaming, type DescMethodUnary, type JsonValue } from "@bufbuild/protobuf";
import { TestService } from "../../../../gen/ts/protows/test/v1/test_pb.js";

/** A command, one line of input. */
export interface Command {
  op: string;
  client?: string;
  ref?: string;
  url?: string;
  codec?: "proto" | "json";
  backoff?: { initialMs?: number; maxMs?: number };
  heartbeat?: { idleMs?: number; timeoutMs?: number } | false;
  method?: string;
  request?: JsonValue;
  timeoutMs?: number;
  idempotent?: boolean;
  resubscribe?: boolean;
  metadata?: Record<string, string>;
  /** stream: how many of the room's latest messages to ask for (PROTOCOL.md section 14). */
  history?: number;
}

/** An event, one line of output. */
export type Event = Record<string, unknown>;

const methods = new Map<string, DescMethod>(TestService.methods.map((m) => [`/${TestService.typeName}/${m.name}`, m]));

/** Driver runs the commands of one driver session. */
export class Driver {
  readonly #emit: (ev: Event) => void;
  readonly #WebSocket: WebSocketConstructor | undefined;
  readonly #clients = new Map<string, Client>();
  readonly #calls = new Map<string, AbortController>();

  constructor(emit: (ev: Event) => void, WebSocket?: WebSocketConstructor) {
    this.#emit = emit;
    this.#WebSocket = WebSocket;
  }

  /** ready announces the driver. */
  ready(implementation: string): void {
    this.#emit({ event: "ready", implementation });
  }

  /** handle runs one command; what it starts reports later, by events. */
  handle(cmd: Command): void {
    const id = cmd.client ?? "";
    try {
      switch (cmd.op) {
        case "connect":
          this.#connect(id, cmd);
          return;
        case "unary":
          void this.#unary(id, this.#client(id), cmd);
          return;
        case "stream":
          void this.#stream(id, this.#client(id), cmd);
          return;
        case "cancel":
          this.#calls.get(`${id}/${cmd.ref}`)?.abort();
          return;
        case "close":
          this.#client(id).close();
          this.#clients.delete(id);
          this.#emit({ client: id, ref: cmd.ref, event: "closed" });
          return;
        case "quit":
          this.closeAll();
          return;
        default:
          throw new Error(`unknown op ${cmd.op}`);
      }
    } catch (err) {
      this.#emit({ client: id, ref: cmd.ref, event: "error", code: "driver", message: String(err) });
    }
  }

  /** closeAll closes every client. */
  closeAll(): void {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }

  #client(id: string): Client {
    const c = this.#clients.get(id);
    if (c === undefined) throw new Error(`no client ${id}`);
    return c;
  }

  #connect(id: string, cmd: Command): void {
    const hb = cmd.heartbeat;
    const client = new Client({
      url: cmd.url ?? "",
      codec: cmd.codec ?? "proto",
      ...(this.#WebSocket !== undefined ? { WebSocket: this.#WebSocket } : {}),
      backoff: { initialMs: cmd.backoff?.initialMs, maxMs: cmd.backoff?.maxMs },
      heartbeat: hb === false ? false : { idleMs: hb?.idleMs, timeoutMs: hb?.timeoutMs },
      onStateChange: (s) => {
        const ev: Event = { client: id, event: "state", state: s.state };
        if (s.closeCode !== undefined) ev.closeCode = s.closeCode;
        if (s.error !== undefined) ev.error = s.error.message;
        this.#emit(ev);
        if (s.state === "connected") this.#emit({ client: id, event: "connected" });
      },
    });
    this.#clients.set(id, client);
  }

  #method(cmd: Command, kind: "unary" | "server_streaming"): DescMethod {
    const m = methods.get(cmd.method ?? "");
    if (m === undefined) throw new Error(`unknown method ${cmd.method}`);
    if (m.methodKind !== kind) throw new Error(`${cmd.method} is not ${kind}`);
    return m;
  }

  #error(id: string, ref: string | undefined, err: unknown): void {
    if (err instanceof ProtowsError) {
      this.#emit({ client: id, ref, event: "error", code: err.code, message: err.rawMessage });
    } else {
      this.#emit({ client: id, ref, event: "error", code: "driver", message: String(err) });
    }
  }

  async #unary(id: string, client: Client, cmd: Command): Promise<void> {
    const key = `${id}/${cmd.ref}`;
    const ac = new AbortController();
    this.#calls.set(key, ac);
    try {
      const m = this.#method(cmd, "unary") as DescMethodUnary;
      let metadata: Record<string, string> = {};
      const res = await client.unary(m, fromJson(m.input, cmd.request ?? {}), {
        signal: ac.signal,
        ...(cmd.timeoutMs !== undefined ? { timeoutMs: cmd.timeoutMs } : {}),
        ...(cmd.idempotent !== undefined ? { idempotent: cmd.idempotent } : {}),
        ...(cmd.metadata !== undefined ? { metadata: cmd.metadata } : {}),
        onReplyMetadata: (md) => (metadata = md),
      });
      this.#emit({ client: id, ref: cmd.ref, event: "reply", payload: toJson(m.output, res), metadata });
    } catch (err) {
      this.#error(id, cmd.ref, err);
    } finally {
      this.#calls.delete(key);
    }
  }

  async #stream(id: string, client: Client, cmd: Command): Promise<void> {
    const key = `${id}/${cmd.ref}`;
    const ac = new AbortController();
    this.#calls.set(key, ac);
    try {
      const m = this.#method(cmd, "server_streaming") as DescMethodServerStreaming;
      let info = { seq: 0, gap: false };
      // The outcome of the last STREAM_POSITION, reported with the message
      // that follows it, as the Go driver does.
      let recovery: { recovery: string; replayed: number } | undefined;
      const stream = client.serverStream(m, fromJson(m.input, cmd.request ?? {}), {
        signal: ac.signal,
        ...(cmd.resubscribe !== undefined ? { resubscribe: cmd.resubscribe } : {}),
        ...(cmd.metadata !== undefined ? { metadata: cmd.metadata } : {}),
        ...(cmd.history !== undefined && cmd.history > 0 ? { history: cmd.history } : {}),
        onMessageInfo: (i) => (info = { seq: i.seq, gap: i.gap }),
        onRecovery: (r) =>
          (recovery = { recovery: r.recovery === "fresh" ? "unspecified" : r.recovery, replayed: r.replayed }),
      });
      for await (const msg of stream) {
        const ev: Event = { client: id, ref: cmd.ref, event: "message", payload: toJson(m.output, msg), seq: info.seq, gap: info.gap };
        if (recovery !== undefined) {
          ev.recovery = recovery.recovery;
          ev.replayed = recovery.replayed;
          recovery = undefined;
        }
        this.#emit(ev);
      }
      this.#emit({ client: id, ref: cmd.ref, event: "end" });
    } catch (err) {
      this.#error(id, cmd.ref, err);
    } finally {
      this.#calls.delete(key);
    }
  }
}
