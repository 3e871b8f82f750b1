/**
 * Domain errors that callers branch on. Bad input and configuration use the
 * built-in `TypeError` and `RangeError`; these are for what happens at run time.
 *
 * @module
 */

/** Why a pull failed; also a metric label. */
export type PullFailureReason =
  | "ErrImagePull"
  | "InvalidImageName"
  | "NoMatchingPlatform"
  | "Timeout"
  | "PodRejected"
  | "PodDeleted"
  | "Unauthorized"
  | "RuntimeError"
  | "ApiError";

/** A pull attempt failed. Thrown by strategies, caught only by the puller's worker loop. */
export class PullError extends Error {
  override readonly name = "PullError";
  /** The reference that failed. */
  readonly ref: string;
  /** A short machine-readable reason, used as a metric label. */
  readonly reason: PullFailureReason;
  /**
   * True when retrying soon cannot help (invalid name, no variant for the
   * node's platform): the puller parks the image at the maximum backoff.
   */
  readonly permanent: boolean;

  constructor(
    ref: string,
    reason: PullFailureReason,
    message: string,
    options?: { cause?: unknown; permanent?: boolean },
  ) {
    super(message, { cause: options?.cause });
    this.ref = ref;
    this.reason = reason;
    this.permanent = options?.permanent ?? false;
  }
}
