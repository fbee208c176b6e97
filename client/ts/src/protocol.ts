// @protows/client/protocol: the wire-level pieces of the runtime
// (docs/PROTOCOL.md): the two codecs, method names and ids, error code
// names, close codes and what a client does after each, the reconnect
// backoff, and the wire protocol's own messages. Applications need only
// the package root; these are for tools, tests and other runtimes.

export {
  CodecError,
  JSON_SUBPROTOCOL,
  MAX_ENVELOPES_PER_FRAME,
  PROTO_SUBPROTOCOL,
  jsonCodec,
  protoCodec,
  type Codec,
  type WireEnvelope,
  type WireDetail,
  type WireError,
  type WirePosition,
  type WireResume,
} from "./codec.js";
export { methodId, methodName } from "./method.js";
export { codeName, codeNumber, type CodeName } from "./code.js";
export { CloseCode, closeAction, stopCode, type CloseAction } from "./closecode.js";
export { backoffDelay, resolveBackoff, type Backoff, type BackoffOptions } from "./backoff.js";
export {
  AuthService,
  Code,
  EnvelopeSchema,
  FrameSchema,
  Kind,
  PositionSchema,
  Recovery,
  ResumeSchema,
  file_protows_v1_protows,
  type Envelope,
  type Frame,
  type Position,
  type Resume,
} from "./gen/protows/v1/protows_pb.js";
