// @protows/client: the TypeScript runtime of protows. See README.md and
// docs/CLIENTS.md in the protows repository. The package root is the API of
// applications; @protows/client/protocol has the wire-level pieces (codecs,
// backoff, method ids) for tools and tests.

export { Client } from "./client.js";
export type { ClientOptions, ConnectionState, StateChange } from "./client.js";
export type { BidiStream, CallOptions, ClientStreamOptions, StreamMessageInfo, StreamOptions, StreamRecovery } from "./call.js";
export type { CallFn, Interceptor, StreamRequest, StreamResponse, UnaryRequest, UnaryResponse } from "./interceptor.js";
export type { HeartbeatOptions, WebSocketConstructor, WebSocketLike } from "./conn.js";
export type { OutboxStorage, RecoveredCall, StoredCall } from "./outbox.js";
export type { TokenProvider } from "./auth.js";
export type { BackoffOptions } from "./backoff.js";
export { createClient, type ServiceClient } from "./service.js";
export { ConnectionLostError, ProtowsError, type ErrorDetail } from "./error.js";
export type { CodeName } from "./code.js";
export { CloseCode } from "./closecode.js";
