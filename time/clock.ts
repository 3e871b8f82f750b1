/**
 * Time as a dependency: the daemon reads the time and waits only through a
 * {@linkcode Clock}, so tests drive every timeout, backoff and resync with a
 * {@linkcode FakeClock} instead of sleeping.
 *
 * @module
 */
import { setImmediate } from "node:timers";

/** The time source every timing decision goes through. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /**
   * Resolves after `ms` milliseconds. Rejects with `signal.reason` as soon as
   * `signal` aborts (at once if it already has). `ms <= 0` resolves without
   * waiting for a timer.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("The operation was aborted", "AbortError");
}

/**
 * The longest delay one timer holds: 2^31 - 1 ms (about 24.8 days). A longer
 * one overflows and fires at once, so {@linkcode realClock} waits longer in
 * steps of at most this.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Sleeps on `clock` for `ms`; true when the time passed, false when `signal`
 * aborted first. For loops that stop on abort rather than throw.
 */
export async function sleepUnlessAborted(
  clock: Clock,
  ms: number,
  signal: AbortSignal,
): Promise<boolean> {
  try {
    await clock.sleep(ms, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Waits until one of `promises` settles or `ms` have passed on `clock`,
 * whichever is first. A rejection ends the wait like a fulfilment and is not
 * rethrown: the caller looks at the state it waits on, not at the outcome.
 * The timer is cancelled either way, so no sleep outlives the wait.
 */
export async function waitAtMost(
  clock: Clock,
  ms: number,
  ...promises: Promise<unknown>[]
): Promise<void> {
  const stop = new AbortController();
  try {
    await Promise.race([...promises, clock.sleep(ms, stop.signal)]);
  } catch {
    // Why absorb: see above; the wait is over either way.
  } finally {
    stop.abort();
  }
}

/**
 * Resolves once `signal` has aborted: at once if it already has. (An abort
 * listener added to a signal that has already aborted is never called, so a
 * bare `addEventListener` waits for ever there.)
 */
export function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** Real timers; a timer that fires early by `now` waits out the rest. */
function timerSleep(now: () => number) {
  return (ms: number, signal?: AbortSignal): Promise<void> => {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (ms <= 0) return Promise.resolve();
    if (ms === Infinity) ms = Number.MAX_VALUE;
    const until = now() + ms;
    return new Promise((resolve, reject) => {
      let id: ReturnType<typeof setTimeout>;
      const onAbort = () => {
        clearTimeout(id);
        reject(abortReason(signal!));
      };
      const arm = (left: number) => {
        id = setTimeout(() => {
          const rest = until - now();
          if (rest > 0) return arm(rest);
          signal?.removeEventListener("abort", onAbort);
          resolve();
        }, Math.min(left, MAX_TIMER_MS));
      };
      arm(ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  };
}

/** The wall clock: `Date.now()` and real timers. */
export const realClock: Clock = { now: () => Date.now(), sleep: timerSleep(() => Date.now()) };

const monotonicNow = () => performance.timeOrigin + performance.now();

/**
 * A clock that only moves forward at the rate of real time: the wall time at
 * the process's start plus the time elapsed since (`performance.now()`). A
 * step of the wall clock (NTP, an operator's `date`) does not move it, so
 * durations measured on it are real durations. (Like Go's monotonic
 * readings, it does not count time the machine was suspended.) For decisions
 * whose safety rests on elapsed time, like a leader's renew deadline
 * (election/leader_elector.ts).
 */
export const monotonicClock: Clock = { now: monotonicNow, sleep: timerSleep(monotonicNow) };

interface Timer {
  readonly id: number;
  readonly due: number;
  readonly callback: () => void;
}

/**
 * A clock that moves only when told to, for tests.
 *
 * Timers fire from {@linkcode advance}, in order of due time (then of
 * creation), each with {@linkcode now} set to its due time; after each one the
 * clock lets every pending promise callback run, so code awaiting a sleep has
 * reacted (and possibly set new timers) before the next timer fires.
 *
 * @example
 * ```ts
 * const clock = new FakeClock();
 * let woke = false;
 * clock.sleep(1000).then(() => woke = true);
 * await clock.advance(999); // woke === false
 * await clock.advance(1); // woke === true
 * ```
 */
export class FakeClock implements Clock {
  #now: number;
  #timers: Timer[] = [];
  #nextId = 1;

  /** @param start The initial time in epoch milliseconds. @default {0} */
  constructor(start = 0) {
    this.#now = start;
  }

  /** The current fake time. */
  now(): number {
    return this.#now;
  }

  /** Like {@linkcode Clock.sleep}, on fake time. */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.clearTimeout(id);
        reject(abortReason(signal!));
      };
      const id = this.setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Calls `callback` once the clock has advanced by `ms`. Returns an id for {@linkcode clearTimeout}. */
  setTimeout(callback: () => void, ms: number): number {
    const timer: Timer = { id: this.#nextId++, due: this.#now + Math.max(0, ms), callback };
    // Keep the list ordered by due time, then creation: a new timer goes after
    // every timer due at the same time or earlier.
    let i = this.#timers.length;
    while (i > 0 && this.#timers[i - 1].due > timer.due) i--;
    this.#timers.splice(i, 0, timer);
    return timer.id;
  }

  /** Cancels a timer; unknown or fired ids are ignored. */
  clearTimeout(id: number): void {
    const i = this.#timers.findIndex((timer) => timer.id === id);
    if (i !== -1) this.#timers.splice(i, 1);
  }

  /** Number of timers (including sleeps) not yet fired or cancelled. */
  pendingTimers(): number {
    return this.#timers.length;
  }

  /** Due time of the earliest pending timer, if any. */
  nextTimerAt(): number | undefined {
    return this.#timers[0]?.due;
  }

  /**
   * Moves the clock forward by `ms`, firing every timer due by then in order,
   * including timers set by the callbacks it runs.
   *
   * @throws {RangeError} when `ms` is negative.
   */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError(`Cannot advance a clock by ${ms} ms: must be >= 0`);
    const target = this.#now + ms;
    await this.flush();
    while (this.#timers.length > 0 && this.#timers[0].due <= target) {
      const timer = this.#timers.shift()!;
      this.#now = timer.due;
      timer.callback();
      await this.flush();
    }
    this.#now = target;
    await this.flush();
  }

  /** Fires timers until none is left or `limit` have fired; returns how many fired. */
  async runAll(limit = 10_000): Promise<number> {
    let fired = 0;
    await this.flush();
    while (this.#timers.length > 0 && fired < limit) {
      const timer = this.#timers.shift()!;
      this.#now = Math.max(this.#now, timer.due);
      timer.callback();
      fired++;
      await this.flush();
    }
    return fired;
  }

  /**
   * Lets every pending promise callback run without moving time. An
   * immediate task runs only after the microtask queue is empty, so awaiting
   * one settles any chain of promise reactions, however deep. (`setImmediate`
   * rather than `setTimeout(0)`, which Deno delays by about a millisecond.)
   */
  flush(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
  }
}
