// createClient: a typed client for a service, made at run time from the
// service descriptor protoc-gen-es generates, so that protoc-gen-protows-es
// is a convenience rather than a requirement. It does what the generated
// classes do: the same method names, the same options, and idempotent
// methods retried after a reconnect.

import type {
  DescMethod,
  DescMethodBiDiStreaming,
  DescMethodClientStreaming,
  DescMethodServerStreaming,
  DescMethodUnary,
  DescService,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import type { BidiStream, CallOptions, ClientStreamOptions, StreamOptions } from "./call.js";
import type { Client } from "./client.js";

/**
 * The client createClient makes for a service: a method for each of the
 * service's methods, named by protobuf-es's `localName` (`sendMessage` for
 * `SendMessage`), except that `then` becomes `then$` so that the client is
 * not a thenable. Unary methods return a promise of the response, server
 * streams an AsyncIterable of messages, client streams take an
 * (Async)Iterable of requests and return a promise of the response, and
 * bidirectional methods return a BidiStream (Client.bidiStream).
 */
export type ServiceClient<S extends DescService> = {
  readonly [K in keyof S["method"] as K extends "then" ? "then$" : K]: S["method"][K] extends DescMethodUnary<infer I, infer O>
    ? (request: MessageInitShape<I>, options?: CallOptions) => Promise<MessageShape<O>>
    : S["method"][K] extends DescMethodServerStreaming<infer I, infer O>
      ? (request: MessageInitShape<I>, options?: StreamOptions) => AsyncIterable<MessageShape<O>>
      : S["method"][K] extends DescMethodClientStreaming<infer I, infer O>
        ? (
            requests: AsyncIterable<MessageInitShape<I>> | Iterable<MessageInitShape<I>>,
            options?: ClientStreamOptions,
          ) => Promise<MessageShape<O>>
        : S["method"][K] extends DescMethodBiDiStreaming<infer I, infer O>
          ? (options?: ClientStreamOptions) => BidiStream<I, O>
          : never;
};

// The values of google.protobuf.MethodOptions.IdempotencyLevel that make a
// call safe to repeat (the enum is not imported, so that bundles do not
// pull in descriptor.proto's descriptors).
const noSideEffects = 1;
const idempotent = 2;

/**
 * createClient returns a typed client for `service`, a service descriptor
 * of protoc-gen-es (`ChatService` from `chat_pb.ts`), whose calls go
 * through `client`:
 *
 * ```ts
 * const chat = createClient(ChatService, client);
 * await chat.send({ room: "lobby", text: "hi" });
 * for await (const ev of chat.watch({ room: "lobby" })) render(ev);
 * ```
 *
 * Methods whose `idempotency_level` option is `NO_SIDE_EFFECTS` or
 * `IDEMPOTENT` are called with `idempotent: true` (a call's own
 * `idempotent: false` overrides it), as protoc-gen-protows-es's classes
 * do.
 */
export function createClient<S extends DescService>(service: S, client: Client): ServiceClient<S> {
  const out: Record<string, unknown> = {};
  for (const method of service.methods) {
    out[method.localName === "then" ? "then$" : method.localName] = methodFn(client, method);
  }
  return out as ServiceClient<S>;
}

function methodFn(client: Client, method: DescMethod): unknown {
  switch (method.methodKind) {
    case "unary": {
      const m = method as DescMethodUnary;
      if (method.idempotency === noSideEffects || method.idempotency === idempotent) {
        return (request: MessageInitShape<DescMethodUnary["input"]>, options?: CallOptions) =>
          client.unary(m, request, { idempotent: true, ...options });
      }
      return (request: MessageInitShape<DescMethodUnary["input"]>, options?: CallOptions) => client.unary(m, request, options);
    }
    case "server_streaming": {
      const m = method as DescMethodServerStreaming;
      return (request: MessageInitShape<DescMethodServerStreaming["input"]>, options?: StreamOptions) =>
        client.serverStream(m, request, options);
    }
    case "client_streaming": {
      const m = method as DescMethodClientStreaming;
      return (
        requests: AsyncIterable<MessageInitShape<DescMethodClientStreaming["input"]>> | Iterable<MessageInitShape<DescMethodClientStreaming["input"]>>,
        options?: ClientStreamOptions,
      ) => client.clientStream(m, requests, options);
    }
    case "bidi_streaming": {
      const m = method as DescMethodBiDiStreaming;
      return (options?: ClientStreamOptions) => client.bidiStream(m, options);
    }
  }
}
