/**
 * Events only from the leader: a standby aggregator sees the same bad
 * objects as the leader, and must not report them too.
 *
 * @module
 */
import type { EventSink, EventType, InvolvedObject } from "../kube/events.ts";

/** Most Events a standby holds back for when it leads. */
const MAX_HELD = 1024;

/**
 * Held Events replayed at a time, each batch answered before the next goes:
 * most of them the old leader already sent (each answered 409, which costs
 * the recorder no token), so the rate limit is spent only on the new ones.
 */
export const REPLAY_BATCH = 5;

/**
 * Passes Events on while `isLeader()` holds; holds them back otherwise and
 * sends them when leadership starts ({@linkcode flush}). Sources report each
 * bad input once, so an Event first seen on a standby would otherwise never be
 * sent; one the old leader already sent has the same name (see
 * `eventName`), so sending it again only meets a 409, never a second Event.
 */
export class LeaderEventSink implements EventSink {
  readonly #inner: EventSink;
  readonly #isLeader: () => boolean;
  readonly #settled: () => Promise<void>;
  readonly #held = new Map<string, Parameters<EventSink["emit"]>>();

  /**
   * @param settled Resolves once the Events sent so far are answered (the
   * recorder's `flush`): the replay waits for it between batches.
   */
  constructor(
    inner: EventSink,
    isLeader: () => boolean,
    settled: () => Promise<void> = () => Promise.resolve(),
  ) {
    this.#inner = inner;
    this.#isLeader = isLeader;
    this.#settled = settled;
  }

  emit(type: EventType, obj: InvolvedObject, reason: string, message: string): void {
    if (this.#isLeader()) {
      this.#inner.emit(type, obj, reason, message);
      return;
    }
    this.#hold([type, obj, reason, message]);
  }

  #hold(args: Parameters<EventSink["emit"]>): void {
    const [type, obj, reason, message] = args;
    const key = [type, obj.uid ?? `${obj.kind}/${obj.namespace}/${obj.name}`, reason, message]
      .join("\u0000");
    this.#held.delete(key);
    this.#held.set(key, args);
    // Bounded: the oldest go first.
    if (this.#held.size > MAX_HELD) this.#held.delete(this.#held.keys().next().value!);
  }

  /**
   * Sends what was held back (call when leadership starts), a batch at a
   * time; what is left when leadership ends meanwhile is held again.
   */
  async flush(): Promise<void> {
    const held = [...this.#held.values()];
    this.#held.clear();
    for (let i = 0; i < held.length; i += REPLAY_BATCH) {
      if (!this.#isLeader()) {
        for (const args of held.slice(i)) this.#hold(args);
        return;
      }
      for (const args of held.slice(i, i + REPLAY_BATCH)) this.#inner.emit(...args);
      await this.#settled();
    }
  }
}
