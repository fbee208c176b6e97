import { codeName, type CodeName } from "./code.js";

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

  constructor(code: CodeName | number, message: string, options?: { cause?: unknown }) {
    const name = typeof code === "number" ? codeName(code) : code;
    super(message === "" ? `protows: ${name}` : `protows: ${name}: ${message}`, options);
    this.name = "ProtowsError";
    this.code = name;
    this.rawMessage = message;
  }
}
