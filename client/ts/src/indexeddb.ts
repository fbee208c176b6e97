// @protows/client/indexeddb: an OutboxStorage on IndexedDB, so that a
// browser page that reloads sends again the exactly-once calls it had no
// answer for (ClientOptions.outboxStorage, onRecoveredCall). It is a
// subpath of its own so that other bundles do not carry it.

import type { OutboxStorage, StoredCall } from "./outbox.js";

/** Options of indexedDBStorage. */
export interface IndexedDBStorageOptions {
  /** The database's name. Default "protows-outbox". One database per client that must not see another's calls. */
  database?: string;
  /** The IndexedDB factory; default globalThis.indexedDB. */
  indexedDB?: IDBFactory;
}

const storeName = "calls";

/**
 * indexedDBStorage returns an OutboxStorage that keeps the calls in an
 * IndexedDB object store ("calls", keyed by idempotency key) of the
 * database `options.database`. The database opens on first use; an
 * operation fails (and the client goes on in memory) when IndexedDB is
 * unavailable, as in some private browsing modes.
 */
export function indexedDBStorage(options: IndexedDBStorageOptions = {}): OutboxStorage {
  let db: Promise<IDBDatabase> | undefined;
  const open = (): Promise<IDBDatabase> =>
    (db ??= new Promise<IDBDatabase>((resolve, reject) => {
      const factory = options.indexedDB ?? globalThis.indexedDB;
      if (factory === undefined) throw new Error("protows: no IndexedDB here");
      const req = factory.open(options.database ?? "protows-outbox", 1);
      req.onupgradeneeded = () => req.result.createObjectStore(storeName, { keyPath: "key" });
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
      req.onblocked = () => reject(new Error("protows: the outbox database is blocked by another page"));
    }).catch((err: unknown) => {
      db = undefined; // try again on the next operation
      throw err;
    }));
  const run = async <T>(mode: IDBTransactionMode, op: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> => {
    const tx = (await open()).transaction(storeName, mode);
    const req = op(tx.objectStore(storeName));
    // Resolved once the transaction committed: the call is on disk then.
    return new Promise<T>((resolve, reject) => {
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = tx.onabort = () => reject(tx.error ?? req.error);
    });
  };
  return {
    put: async (call: StoredCall) => void (await run("readwrite", (s) => s.put(call))),
    delete: async (key: string) => void (await run("readwrite", (s) => s.delete(key))),
    list: () => run("readonly", (s) => s.getAll() as IDBRequest<StoredCall[]>),
  };
}
