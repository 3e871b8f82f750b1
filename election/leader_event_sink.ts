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
 * Passes Events on while `isLeader()` holds; holds them back otherwise and
 * sends them when leadership starts ({@linkcode flush}). Sources report each
 * bad input once, so an Event first seen on a standby would otherwise never be
 * sent; one the old leader already sent has the same name (see
 * `eventName`), so sending it again only meets a 409, never a second Event.
 */
export class LeaderEventSink implements EventSink {
  readonly #inner: EventSink;
  readonly #isLeader: () => boolean;
  readonly #held = new Map<string, Parameters<EventSink["emit"]>>();

  constructor(inner: EventSink, isLeader: () => boolean) {
    this.#inner = inner;
    this.#isLeader = isLeader;
  }

  emit(type: EventType, obj: InvolvedObject, reason: string, message: string): void {
    if (this.#isLeader()) {
      this.#inner.emit(type, obj, reason, message);
      return;
    }
    const key = [type, obj.uid ?? `${obj.kind}/${obj.namespace}/${obj.name}`, reason, message]
      .join("\u0000");
    this.#held.delete(key);
    this.#held.set(key, [type, obj, reason, message]);
    // Bounded: the oldest go first.
    if (this.#held.size > MAX_HELD) this.#held.delete(this.#held.keys().next().value!);
  }

  /** Sends what was held back (call when leadership starts). */
  flush(): void {
    const held = [...this.#held.values()];
    this.#held.clear();
    for (const args of held) this.#inner.emit(...args);
  }
}
