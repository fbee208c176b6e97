// @protows/client: the TypeScript runtime of protows. See README.md and
// docs/PROTOCOL.md in the protows repository.

export { Client } from "./client.js";
export type {
  CallOptions,
  ClientOptions,
  ConnectionState,
  HeartbeatOptions,
  StateChange,
  StreamMessageInfo,
  StreamOptions,
  WebSocketConstructor,
  WebSocketLike,
} from "./client.js";
export { ProtowsError } from "./error.js";
export { codeName, codeNumber, type CodeName } from "./code.js";
export { methodId, methodName } from "./method.js";
export { backoffDelay, closeAction, type BackoffOptions, type CloseAction } from "./backoff.js";
export {
  CodecError,
  JSON_SUBPROTOCOL,
  MAX_ENVELOPES_PER_FRAME,
  PROTO_SUBPROTOCOL,
  jsonCodec,
  protoCodec,
  type Codec,
  type WireEnvelope,
  type WireError,
} from "./codec.js";
export { Kind, Code, AuthService } from "./gen/protows/v1/protows_pb.js";
