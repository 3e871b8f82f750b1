/**
 * Leader election's three durations and client-go's rules for them, without
 * the client (the configuration checks them at start).
 *
 * @module
 */

/** client-go's defaults (and kube-controller-manager's). */
export const DEFAULT_LEASE_DURATION_MS = 15_000;
/** See {@linkcode DEFAULT_LEASE_DURATION_MS}. */
export const DEFAULT_RENEW_DEADLINE_MS = 10_000;
/** See {@linkcode DEFAULT_LEASE_DURATION_MS}. */
export const DEFAULT_RETRY_PERIOD_MS = 2_000;
/** client-go's JitterFactor: a deadline must leave room for a jittered retry. */
export const JITTER_FACTOR = 1.2;

/** Checks client-go's constraints on the three durations. */
export function validateElectionDurations(
  leaseDurationMs: number,
  renewDeadlineMs: number,
  retryPeriodMs: number,
): void {
  if (!(leaseDurationMs > renewDeadlineMs)) {
    throw new RangeError(
      `The lease duration (${leaseDurationMs} ms) must be greater than the renew deadline (${renewDeadlineMs} ms)`,
    );
  }
  if (!(renewDeadlineMs > JITTER_FACTOR * retryPeriodMs)) {
    throw new RangeError(
      `The renew deadline (${renewDeadlineMs} ms) must be greater than ${JITTER_FACTOR} × the retry period (${retryPeriodMs} ms)`,
    );
  }
  if (!(retryPeriodMs > 0)) {
    throw new RangeError(`The retry period (${retryPeriodMs} ms) must be greater than 0`);
  }
}
