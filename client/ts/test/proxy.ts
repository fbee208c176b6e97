// A TCP proxy that can stop forwarding without closing anything: the
// half-open link a dead NAT or a suspended laptop leaves behind.
import net from "node:net";
import type { AddressInfo } from "node:net";

export class BlackholeProxy {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  #dropNext = false;
  /** When true, new connections are reset at once: the network is down. */
  refuseNew = false;
  #accepted = 0;
  private constructor(server: net.Server) {
    this.#server = server;
  }

  /** start listens on loopback and forwards to target ("host:port"). */
  static async start(target: string): Promise<BlackholeProxy> {
    const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
    const server = net.createServer();
    const proxy = new BlackholeProxy(server);
    server.on("connection", (down) => {
      if (proxy.refuseNew) {
        down.on("error", () => {});
        down.resetAndDestroy();
        return;
      }
      proxy.#accepted++;
      const up = net.connect(port, host);
      for (const s of [down, up]) {
        proxy.#sockets.add(s);
        s.on("close", () => proxy.#sockets.delete(s));
        s.on("error", () => {});
      }
      down.on("data", (b) => up.write(b));
      up.on("data", (b) => {
        if (proxy.#dropNext) {
          // The server's answer never reaches the client, which sees the
          // link die (a reset) instead.
          proxy.#dropNext = false;
          down.resetAndDestroy();
          up.destroy();
          return;
        }
        down.write(b);
      });
      down.on("close", () => up.destroy());
      up.on("close", () => down.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return proxy;
  }

  /** The proxy's address, host:port. */
  get addr(): string {
    const a = this.#server.address() as AddressInfo;
    return `127.0.0.1:${a.port}`;
  }

  /**
   * freezeExisting silently swallows the traffic of the connections open
   * now, in both directions, keeping them open; new connections work.
   */
  freezeExisting(): void {
    for (const s of this.#sockets) {
      s.removeAllListeners("data"); // still flowing: bytes are read and dropped
    }
  }

  /**
   * dropNextReply discards the next bytes any server sends and cuts that
   * connection: a request forwarded before is answered by the server, but
   * the answer never reaches the client.
   */
  dropNextReply(): void {
    this.#dropNext = true;
  }

  /** The number of connections accepted. */
  get accepted(): number {
    return this.#accepted;
  }

  /** cutAll resets every open connection; new ones work. */
  cutAll(): void {
    for (const s of this.#sockets) s.resetAndDestroy();
  }

  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
