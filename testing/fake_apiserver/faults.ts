/**
 * Fault injection state: queued failures for the next matching requests and
 * added latency. Dropping watches and going down live on the server, which
 * owns the connections.
 *
 * @module
 */
import { ApiError, failureStatus } from "./status.ts";

/** Which requests a queued failure applies to; an omitted field matches anything. */
export interface FaultMatch {
  /** get, list, watch, create, update, patch, delete, deletecollection. */
  readonly verb?: string;
  /** Plural, optionally with subresource: `pods`, `pods/status`. */
  readonly resource?: string;
}

/** Options of `failNext`. */
export interface FailNextOptions {
  /** Retry-After seconds, sent as a header and in `details.retryAfterSeconds`. @default {1 for 429 and 503} */
  readonly retryAfterSeconds?: number;
  readonly match?: FaultMatch;
}

interface PendingFailure {
  remaining: number;
  readonly status: 500 | 429 | 503;
  readonly options: FailNextOptions;
}

/** The status codes `failNext` can inject. */
export type InjectedStatus = 500 | 429 | 503;

/** Queued failures and latency. */
export class FaultPlan {
  #pending: PendingFailure[] = [];
  /** Milliseconds added before every request is handled. */
  latencyMs = 0;

  /** Answers the next `n` matching requests with `status`. */
  failNext(n: number, status: InjectedStatus, options: FailNextOptions = {}): void {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`Count must be a whole number: ${n}`);
    if (n > 0) this.#pending.push({ remaining: n, status, options });
  }

  #before: { match: FaultMatch; action: () => void }[] = [];

  /**
   * Runs `action` just before the next matching request is handled: another
   * writer's change that lands between a client's read and its write.
   */
  beforeNext(match: FaultMatch, action: () => void): void {
    this.#before.push({ match, action });
  }

  /** Runs and forgets the first `beforeNext` action matching this request. */
  runBefore(verb: string, resource: string): void {
    const index = this.#before.findIndex(({ match }) =>
      (match.verb === undefined || match.verb === verb) &&
      (match.resource === undefined || match.resource === resource)
    );
    if (index < 0) return;
    const [{ action }] = this.#before.splice(index, 1);
    action();
  }

  /** Forgets queued failures and latency. */
  reset(): void {
    this.#pending = [];
    this.#before = [];
    this.latencyMs = 0;
  }

  /** Number of failures still queued. */
  get pending(): number {
    return this.#pending.reduce((sum, p) => sum + p.remaining, 0);
  }

  /** Consumes and returns the failure for this request, if one is queued. */
  take(verb: string, resource: string): ApiError | undefined {
    const index = this.#pending.findIndex((p) =>
      (p.options.match?.verb === undefined || p.options.match.verb === verb) &&
      (p.options.match?.resource === undefined || p.options.match.resource === resource)
    );
    if (index < 0) return undefined;
    const failure = this.#pending[index];
    if (--failure.remaining === 0) this.#pending.splice(index, 1);
    return injectedError(failure.status, failure.options.retryAfterSeconds);
  }
}

function injectedError(status: InjectedStatus, retryAfter?: number): ApiError {
  switch (status) {
    case 429: {
      const seconds = retryAfter ?? 1;
      return new ApiError(
        failureStatus(429, "TooManyRequests", "Too many requests, please try again later.", {
          retryAfterSeconds: seconds,
        }),
        { "Retry-After": String(seconds) },
      );
    }
    case 503: {
      const seconds = retryAfter ?? 1;
      return new ApiError(
        failureStatus(
          503,
          "ServiceUnavailable",
          "the server is currently unable to handle the request",
          {
            retryAfterSeconds: seconds,
          },
        ),
        { "Retry-After": String(seconds) },
      );
    }
    case 500:
      return new ApiError(
        failureStatus(500, "InternalError", "Internal error occurred: injected fault", {
          causes: [{ message: "injected fault" }],
        }),
        retryAfter !== undefined ? { "Retry-After": String(retryAfter) } : {},
      );
  }
}
