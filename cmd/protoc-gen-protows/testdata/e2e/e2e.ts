// The TypeScript half of the end-to-end test of generated code: run by
// internal/e2etest with the URL of a Go server that serves the golden
// services, it calls every method through the generated TypeScript clients
// in both codecs, and exits non-zero on the first mismatch.
import assert from "node:assert/strict";
import WebSocket from "ws";
import { Client, ProtowsError, type WebSocketConstructor } from "@protows/client";
import { toJson } from "@bufbuild/protobuf";
import { StructSchema, timestampDate } from "@bufbuild/protobuf/wkt";
import { ClockClient, EmptyClient, StoreServiceClient } from "../golden/ts/acme/store/v1/store_protows.js";
import { InventoryServiceClient } from "../golden/ts/acme/store/v1/inventory_protows.js";
import { AdminServiceClient, LegacyAdminServiceClient } from "../golden/ts/acme/store/admin/v1alpha1/admin_protows.js";
import { ClientClient, interfaceClient, PromiseClient } from "../golden/ts/keywords/v1/keywords_protows.js";
import { EditionServiceClient } from "../golden/ts/editions/v1/editions_protows.js";

const epoch = Date.UTC(2026, 0, 2, 3, 4, 5);

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const m of it) {
    out.push(m);
  }
  return out;
}

async function rejectsWith(p: Promise<unknown>, code: string, message?: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ProtowsError, `want a ProtowsError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (message !== undefined) {
      assert.equal(err.rawMessage, message);
    }
    return true;
  });
}

async function run(url: string, codec: "proto" | "json"): Promise<void> {
  const client = new Client({ url, codec, WebSocket: WebSocket as unknown as WebSocketConstructor });
  try {
    const store = new StoreServiceClient(client);
    const item = await store.getItem({ id: "x" });
    assert.equal(item.name, "item x");
    assert.equal(item.priceCents, 250n);
    assert.ok(item.updated !== undefined && Math.floor(timestampDate(item.updated).getTime() / 1000) === epoch / 1000);
    await rejectsWith(store.getItem({}), "not_found");
    await store.putItem({ id: "x", name: "n" });
    await rejectsWith(store.putItem({ id: "x" }), "invalid_argument");
    assert.equal((await store.buy({ id: "x", quantity: 2 })).orderId, "buy-x");
    assert.equal((await store.oldBuy({ id: "y" })).orderId, "oldbuy-y");
    const events = await collect(store.watchItems({}));
    assert.deepEqual(events.map((e) => [e.item?.id, e.removed]), [["a", false], ["b", false], ["c", true]]);
    const stamps: number[] = [];
    await rejectsWith((async () => {
      for await (const t of store.oldWatch({})) {
        stamps.push(Number(t.seconds));
      }
    })(), "data_loss");
    assert.deepEqual(stamps, [epoch / 1000]);

    const clock = new ClockClient(client);
    assert.equal(Number((await clock.now({})).seconds), epoch / 1000);
    const ticks = await collect(clock.ticks({ count: 4 }));
    assert.deepEqual(ticks.map((t) => Number(t.seconds) - epoch / 1000), [0, 1, 2, 3]);
    assert.ok(new EmptyClient(client) instanceof EmptyClient);

    await rejectsWith(new InventoryServiceClient(client).count({ id: "x" }), "unimplemented",
      "/acme.store.v1.InventoryService/Count is not implemented");

    const admin = new AdminServiceClient(client);
    const restocked = await admin.restock({ item: { id: "z" }, quantity: 7 });
    assert.equal(restocked.id, "z");
    assert.equal(restocked.priceCents, 7n);
    const logs = await collect(admin.audit({ seconds: 90n }));
    assert.equal(logs.length, 1);
    assert.ok(logs[0] !== undefined);
    assert.deepEqual(toJson(StructSchema, logs[0]), { for: "1m30s", ok: true });
    assert.equal((await new LegacyAdminServiceClient(client).reset({ id: "w" })).orderId, "reset-w");

    const k = new ClientClient(client);
    const req = { text: "t", type: "ty" };
    assert.equal((await k.delete(req)).text, "Delete:t:ty");
    assert.equal((await k.new(req)).text, "New:t:ty");
    assert.equal((await k.constructor$(req)).text, "Constructor:t:ty");
    assert.equal((await k.toString$(req)).text, "ToString:t:ty");
    assert.equal((await k.type(req)).text, "Type:t:ty");
    assert.equal((await k.lower_snake(req)).text, "LowerSnake:t:ty");
    await k.interface({});
    assert.deepEqual((await collect(k.func(req))).map((r) => r.text), ["Func:t:ty", "Func:t:ty"]);
    assert.equal((await new interfaceClient(client).default(req)).text, "Default:t:ty");
    const promise = new PromiseClient(client);
    assert.equal((await promise.then$(req)).text, "Then:t:ty");
    // A client is not a thenable: awaiting it gives the client itself.
    assert.equal(await Promise.resolve(promise), promise);

    const ed = new EditionServiceClient(client);
    assert.equal((await ed.get({ key: "k" })).value, "value of k");
    assert.deepEqual((await collect(ed.watch({ key: "k" }))).map((r) => r.value), ["watched k"]);

    // Cancelling a stream through its signal ends the iteration.
    const ac = new AbortController();
    const seen: number[] = [];
    await rejectsWith((async () => {
      for await (const t of clock.ticks({ count: 0 }, { signal: ac.signal })) {
        seen.push(Number(t.seconds));
        ac.abort();
      }
    })(), "canceled");
    assert.equal(seen.length, 1);
  } finally {
    client.close();
  }
}

const url = process.argv[2];
if (url === undefined) {
  throw new Error("usage: node e2e.js ws://host:port/");
}
for (const codec of ["proto", "json"] as const) {
  await run(url, codec);
  console.log(`${codec}: ok`);
}
