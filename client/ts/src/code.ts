// Error codes: the numbers of the wire protocol's Code enum and the lower
// snake case names of the JSON codec and of Go's protows.Code String form.

/**
 * The name of an error code, as the JSON codec writes it and as Go's
 * `protows.Code.String()` returns it. A code this version does not know is
 * `code_N`, N its number.
 */
export type CodeName =
  | "canceled"
  | "unknown"
  | "invalid_argument"
  | "deadline_exceeded"
  | "not_found"
  | "already_exists"
  | "permission_denied"
  | "resource_exhausted"
  | "failed_precondition"
  | "aborted"
  | "out_of_range"
  | "unimplemented"
  | "internal"
  | "unavailable"
  | "data_loss"
  | "unauthenticated"
  | `code_${number}`;

// Index = code number; index 0 is never a code.
const names: readonly string[] = [
  "",
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
];

/** codeName returns the name of the code number n (`code_N` when unknown). */
export function codeName(n: number): CodeName {
  if (n > 0 && n < names.length) {
    return names[n] as CodeName;
  }
  return `code_${n}`;
}

/**
 * codeNumber returns the number of a code name, or undefined for a string
 * that is not a code name. It accepts `code_N` for any N from 1 to 2^32-1.
 */
export function codeNumber(name: string): number | undefined {
  const i = names.indexOf(name);
  if (i > 0) {
    return i;
  }
  const m = /^code_([1-9][0-9]{0,9})$/.exec(name);
  if (m !== null) {
    const n = Number(m[1]);
    if (n <= 0xffffffff) {
      return n;
    }
  }
  return undefined;
}
