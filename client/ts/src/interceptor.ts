// Interceptors: functions that wrap every call a client makes, unary calls
// and server streams alike, to add metadata, log, measure, or refuse. The
// shape is connect-es's: an interceptor takes the next step of the chain
// and returns a step that does something around it.

import type { DescMessage, DescMethodServerStreaming, DescMethodUnary, MessageShape } from "@bufbuild/protobuf";

/** A unary call as interceptors see it. */
export interface UnaryRequest<I extends DescMessage = DescMessage, O extends DescMessage = DescMessage> {
  /** False: a unary call. */
  readonly stream: false;
  /** The method's descriptor. */
  readonly method: DescMethodUnary<I, O>;
  /** The method's full name on the wire: "/protows.test.v1.TestService/Echo". */
  readonly methodName: string;
  /** The request. Pass a new request to next to send another message. */
  readonly message: MessageShape<I>;
  /**
   * The request metadata (string keys in lower case, string values): a
   * copy of the call's `metadata` option, the call's own, so interceptors
   * may add entries in place.
   */
  readonly metadata: Record<string, string>;
  /**
   * Aborted when the call is cancelled or times out; its reason is the
   * ProtowsError the call fails with.
   */
  readonly signal: AbortSignal;
}

/** A server stream as interceptors see it. */
export interface StreamRequest<I extends DescMessage = DescMessage, O extends DescMessage = DescMessage> {
  /** True: a server stream. */
  readonly stream: true;
  /** The method's descriptor. */
  readonly method: DescMethodServerStreaming<I, O>;
  /** The method's full name on the wire. */
  readonly methodName: string;
  /** The request, sent again when the stream is re-opened. */
  readonly message: MessageShape<I>;
  /** The request metadata, as in UnaryRequest. */
  readonly metadata: Record<string, string>;
  /** Aborted when the stream is cancelled; its reason is the ProtowsError. */
  readonly signal: AbortSignal;
}

/** The outcome of a unary call that succeeded. */
export interface UnaryResponse<I extends DescMessage = DescMessage, O extends DescMessage = DescMessage> {
  /** False: a unary call. */
  readonly stream: false;
  /** The method's descriptor. */
  readonly method: DescMethodUnary<I, O>;
  /** The method's full name on the wire. */
  readonly methodName: string;
  /** The response. */
  readonly message: MessageShape<O>;
  /** The REPLY's metadata ({} when the server set none); the call's onReplyMetadata receives it. */
  readonly metadata: Record<string, string>;
}

/**
 * A server stream that has been set up. Its messages arrive while
 * `message` is iterated: the REQUEST goes out when the iteration starts,
 * and the stream's failure is thrown by the iteration, not by next.
 */
export interface StreamResponse<I extends DescMessage = DescMessage, O extends DescMessage = DescMessage> {
  /** True: a server stream. */
  readonly stream: true;
  /** The method's descriptor. */
  readonly method: DescMethodServerStreaming<I, O>;
  /** The method's full name on the wire. */
  readonly methodName: string;
  /** The stream's messages. */
  readonly message: AsyncIterable<MessageShape<O>>;
}

/** One step of a call: the rest of the interceptor chain, then the call itself. */
export type CallFn = (req: UnaryRequest | StreamRequest) => Promise<UnaryResponse | StreamResponse>;

/**
 * Interceptor wraps the unary calls and server streams of a client
 * (ClientOptions.interceptors; client-streaming and bidirectional calls
 * do not go through interceptors yet):
 * it receives the next step and returns a step that calls it, with the
 * request it was given or another one, and returns its response or another
 * one. It sees unary calls (`req.stream` false) and server streams
 * (`req.stream` true); a stream's messages and its failure come through
 * the response's `message` iterable, which an interceptor wraps to see
 * them.
 *
 * ```ts
 * const requestId: Interceptor = (next) => (req) => {
 *   req.metadata["x-request-id"] = crypto.randomUUID();
 *   return next(req);
 * };
 * ```
 *
 * The chain runs once per call: an idempotent call sent again after a
 * reconnect and a stream re-opened after one are still the one call, with
 * the same request. The client's in-band Authenticate call does not go
 * through interceptors.
 */
export type Interceptor = (next: CallFn) => CallFn;

// chain puts interceptors around inner: the first of them sees the request
// first and the response last.
export function chain(interceptors: readonly Interceptor[], inner: CallFn): CallFn {
  let fn = inner;
  for (let i = interceptors.length - 1; i >= 0; i--) {
    fn = interceptors[i]!(fn);
  }
  return fn;
}
