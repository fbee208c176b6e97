import {
  createRegistry,
  fromBinary,
  fromJson,
  type DescMessage,
  type JsonObject,
  type MessageShape,
} from "@bufbuild/protobuf";
import { AnySchema, anyUnpack } from "@bufbuild/protobuf/wkt";
import { codeName, type CodeName } from "./code.js";
import type { WireEnvelope } from "./codec.js";

/**
 * ErrorDetail is a typed detail of an error (docs/PROTOCOL.md, section
 * 8.1), as the server sent it: the Protobuf bytes of the message with the
 * Protobuf codec, its protojson object ("@type" included) with the JSON
 * codec. ProtowsError.findDetails decodes the details of a type; a detail
 * of a type the application does not know stays as it came.
 */
export interface ErrorDetail {
  /** The full name of the message type, such as "google.rpc.RetryInfo". */
  readonly type: string;
  /** The Protobuf encoding of the message (Protobuf codec). */
  readonly value?: Uint8Array;
  /** The protojson form of the google.protobuf.Any (JSON codec). */
  readonly json?: JsonObject;
}

/**
 * ProtowsError is the error of a failed call: the error the server sent
 * (ERROR or STREAM_END with an error), or one the client made up for a call
 * that could not finish: `canceled` (AbortSignal, `close()`),
 * `deadline_exceeded` (timeout), `unavailable` (the connection dropped while
 * the call was in flight, or closed for good before it could be sent).
 */
export class ProtowsError extends Error {
  /** The code, as its name: "not_found", "unavailable", ... */
  readonly code: CodeName;
  /** The message without the code: what the server sent as Error.message. */
  readonly rawMessage: string;
  /**
   * The full name of the method of the call that failed
   * ("/protows.test.v1.TestService/Echo"), which the message names too:
   * every error a call or stream fails with has it. Undefined for errors
   * that concern the connection rather than one call (StateChange.error).
   */
  readonly method: string | undefined;
  /** The typed details the server sent, in order (see findDetails). */
  readonly details: readonly ErrorDetail[];

  constructor(
    code: CodeName | number,
    message: string,
    options?: { cause?: unknown; method?: string; details?: readonly ErrorDetail[] },
  ) {
    const name = typeof code === "number" ? codeName(code) : code;
    const method = options?.method;
    super(
      `protows: ${method === undefined ? "" : `${method}: `}${name}${message === "" ? "" : `: ${message}`}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "ProtowsError";
    this.code = name;
    this.rawMessage = message;
    this.method = method;
    this.details = options?.details ?? [];
  }

  /**
   * findDetails decodes the details whose type is schema's, in order; a
   * detail that does not decode is skipped.
   *
   * ```ts
   * const [delay] = err.findDetails(DurationSchema);
   * ```
   */
  findDetails<D extends DescMessage>(schema: D): MessageShape<D>[] {
    const out: MessageShape<D>[] = [];
    for (const d of this.details) {
      if (d.type !== schema.typeName) continue;
      try {
        if (d.value !== undefined) {
          out.push(fromBinary(schema, d.value));
        } else if (d.json !== undefined) {
          // Through an Any, which knows the JSON forms of the well-known
          // types ({"@type": ..., "value": ...}).
          const any = fromJson(AnySchema, d.json, { registry: createRegistry(schema), ignoreUnknownFields: true });
          const m = anyUnpack(any, schema);
          if (m !== undefined) out.push(m);
        }
      } catch {
        // Not a valid message of its type: skip it.
      }
    }
    return out;
  }
}

// typeName is the message name of a type URL: what follows its last slash.
function typeName(url: string): string {
  return url.slice(url.lastIndexOf("/") + 1);
}

// withMethod returns err naming the method of the call it failed: a copy,
// as one error may be shared by the calls of a connection that ended.
// Other errors, and errors that name a method already, are returned as
// they are.
export function withMethod(err: unknown, method: string): unknown {
  if (!(err instanceof ProtowsError) || err.method !== undefined) {
    return err;
  }
  return new ProtowsError(err.code, err.rawMessage, { cause: err.cause, method, details: err.details });
}

/**
 * ConnectionLostError is the `cause` of the `unavailable` ProtowsError of a
 * call that was in flight when its connection ended: the server may or may
 * not have run it. It is what the Go client's `ErrConnectionLost` is there.
 * The client retries idempotent calls and re-opens streams after this
 * error, and after no other:
 *
 * ```ts
 * if (err instanceof ProtowsError && err.cause instanceof ConnectionLostError) {
 *   // The outcome is unknown: check before doing it again.
 * }
 * ```
 */
export class ConnectionLostError extends Error {
  /** The close code of the connection (CloseCode.Abnormal, 1006, when it dropped). */
  readonly closeCode: number;
  /** The close reason, or the server's last connection-level error. */
  readonly closeReason: string;

  constructor(closeCode: number, closeReason: string) {
    super(`connection lost (${closeCode}${closeReason === "" ? "" : ` ${closeReason}`})`);
    this.name = "ConnectionLostError";
    this.closeCode = closeCode;
    this.closeReason = closeReason;
  }
}

// connectionLost is the error of the calls in flight on a connection that
// ended with code; detail is the close reason or the server's last
// connection-level error.
export function connectionLost(code: number, detail: string): ProtowsError {
  return new ProtowsError("unavailable", `connection closed (${code}${detail === "" ? "" : ` ${detail}`})`, {
    cause: new ConnectionLostError(code, detail),
  });
}

// isConnectionLost reports whether err is the error of a call whose
// connection ended while it was in flight: only such calls may be retried
// (idempotent calls) or re-opened (streams).
export function isConnectionLost(err: unknown): boolean {
  return err instanceof ProtowsError && err.cause instanceof ConnectionLostError;
}

// wireError is the ProtowsError an ERROR or a STREAM_END with an error
// carries (code 0, which a server must not send, reads as unknown).
export function wireError(env: Pick<WireEnvelope, "error">): ProtowsError {
  const code = env.error?.code ?? 0;
  const details = (env.error?.details ?? []).map((d): ErrorDetail => {
    if ("value" in d && d.value instanceof Uint8Array && typeof d.typeUrl === "string") {
      return { type: typeName(d.typeUrl), value: d.value };
    }
    const json = d as JsonObject;
    return { type: typeName(String(json["@type"])), json };
  });
  return new ProtowsError(code === 0 ? "unknown" : code, env.error?.message ?? "", { details });
}
