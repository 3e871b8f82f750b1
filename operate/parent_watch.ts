/**
 * Stops the daemon when the process that started it exits.
 *
 * Why: `npx -y deno@… run main.ts` runs the daemon as a grandchild of
 * `npm exec` (npm → `sh -c deno` → deno). npm forwards SIGTERM and SIGINT
 * only to the shell, which dies without passing them on, so stopping npx
 * left the daemon running, still holding its port. An orphan is re-parented
 * (to init, or to a subreaper), so a changed parent id means the starter is
 * gone. In a container the daemon is process 1 (parent 0), whose parent
 * never changes; nothing changes there.
 *
 * @module
 */
import type { Clock } from "../time/clock.ts";

/** Options for {@linkcode watchParent}. */
export interface ParentWatchOptions {
  /** The current parent process id. @default {() => Deno.ppid} */
  ppid?: () => number;
  /** How often to look. @default {1000} */
  intervalMs?: number;
  clock: Clock;
  /** Ends the watch. */
  signal: AbortSignal;
}

/**
 * Calls `onGone` once when the parent process id changes from the one at the
 * start (the parent exited and this process was re-parented). Does nothing
 * when there is no parent to lose (id 0 or 1: a container's process 1, or a
 * process started by init).
 */
export async function watchParent(
  onGone: (info: { parent: number; now: number }) => void,
  options: ParentWatchOptions,
): Promise<void> {
  const ppid = options.ppid ?? (() => Deno.ppid);
  const parent = ppid();
  if (parent <= 1) return;
  while (!options.signal.aborted) {
    try {
      await options.clock.sleep(options.intervalMs ?? 1_000, options.signal);
    } catch {
      return;
    }
    const now = ppid();
    if (now !== parent) {
      onGone({ parent, now });
      return;
    }
  }
}
