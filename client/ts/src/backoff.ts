/** Reconnect backoff: exponential, with full jitter. */
export interface BackoffOptions {
  /** The ceiling of the first delay, in ms. Default 500. */
  initialMs?: number;
  /** The largest ceiling, in ms. Default 30000. */
  maxMs?: number;
  /** The growth of the ceiling per failed attempt. Default 2. */
  multiplier?: number;
  /**
   * How long a connection must stay up, in ms, before the attempt count
   * goes back to 0. Default 30000.
   */
  resetAfterMs?: number;
}

/** The resolved form of BackoffOptions. */
export type Backoff = Required<BackoffOptions>;

/** resolveBackoff fills in the defaults. */
export function resolveBackoff(o: BackoffOptions | undefined): Backoff {
  return {
    initialMs: o?.initialMs ?? 500,
    maxMs: o?.maxMs ?? 30_000,
    multiplier: o?.multiplier ?? 2,
    resetAfterMs: o?.resetAfterMs ?? 30_000,
  };
}

/**
 * backoffDelay returns the delay before reconnect attempt n (from 0): a
 * uniformly random duration between 0 and min(max, initial * multiplier^n)
 * ("full jitter", so that clients dropped together do not come back
 * together).
 */
export function backoffDelay(b: Backoff, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(b.maxMs, b.initialMs * Math.pow(b.multiplier, attempt));
  return Math.floor(random() * ceiling);
}
