/**
 * A work queue with due times, for a controller's worker loop: items wait
 * either in a ready queue (first in, first out) or until a due time, and are
 * in at most one of the two places at once. Items are compared by identity.
 * The queue does no I/O and keeps no clock: the caller says what "now" is.
 *
 * @module
 */

interface Scheduled<T> {
  readonly at: number;
  readonly seq: number;
  readonly item: T;
  /** The item's schedule when pushed; a later schedule or a removal makes this one stale. */
  readonly ticket: number;
}

/** Stale entries are dropped in bulk once there are more than this many and they dominate. */
const COMPACT_MIN = 1_024;

/** A binary min-heap of due times (ties in insertion order). */
class DueHeap<T> {
  #items: Scheduled<T>[] = [];

  get size(): number {
    return this.#items.length;
  }

  peek(): Scheduled<T> | undefined {
    return this.#items[0];
  }

  push(scheduled: Scheduled<T>): void {
    this.#items.push(scheduled);
    this.#up(this.#items.length - 1);
  }

  pop(): Scheduled<T> | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      this.#down(0);
    }
    return top;
  }

  /** Drops every item `keep` rejects. */
  filter(keep: (item: Scheduled<T>) => boolean): void {
    this.#items = this.#items.filter(keep);
    for (let i = (this.#items.length >> 1) - 1; i >= 0; i--) this.#down(i);
  }

  #less(a: Scheduled<T>, b: Scheduled<T>): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #up(i: number): void {
    const items = this.#items;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(items[i], items[parent])) break;
      [items[i], items[parent]] = [items[parent], items[i]];
      i = parent;
    }
  }

  #down(i: number): void {
    const items = this.#items;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if (left < items.length && this.#less(items[left], items[least])) least = left;
      if (right < items.length && this.#less(items[right], items[least])) least = right;
      if (least === i) return;
      [items[i], items[least]] = [items[least], items[i]];
      i = least;
    }
  }
}

/**
 * Ready items in order, and items waiting for a due time.
 *
 * Removal and rescheduling are O(1): the old position stays behind, is
 * skipped when reached, and is dropped in bulk once such leftovers dominate,
 * so churn cannot grow the queue without bound.
 *
 * @example
 * ```ts ignore
 * const queue = new WorkQueue<Entry>();
 * queue.addAt(entry, clock.now() + retryDelay);
 * queue.promoteDue(clock.now());
 * for (let e = queue.pop(); e !== undefined; e = queue.pop()) start(e);
 * ```
 */
export class WorkQueue<T> {
  /** Each ready item's absolute position in the ready list. */
  readonly #ready = new Map<T, number>();
  /** Ready items in order, with leftovers of taken, removed or re-added ones. */
  #readyList: T[] = [];
  /** Index in `#readyList` of the next candidate. */
  #readyHead = 0;
  /** Absolute position of `#readyList[0]`. */
  #readyBase = 0;
  /** The current schedule ticket of each waiting item. */
  readonly #waiting = new Map<T, number>();
  readonly #due = new DueHeap<T>();
  #tickets = 0;

  /** Items ready now. */
  get readySize(): number {
    return this.#ready.size;
  }

  /** Items waiting for their due time. */
  get waitingSize(): number {
    return this.#waiting.size;
  }

  /** Whether `item` is ready or waiting. */
  has(item: T): boolean {
    return this.#ready.has(item) || this.#waiting.has(item);
  }

  /**
   * Makes `item` ready, behind those ready already, and cancels its due time.
   * An item already ready keeps its place.
   */
  add(item: T): void {
    this.#waiting.delete(item);
    if (this.#ready.has(item)) return;
    this.#ready.set(item, this.#readyBase + this.#readyList.length);
    this.#readyList.push(item);
    const length = this.#readyList.length - this.#readyHead;
    if (length > COMPACT_MIN && length > 2 * this.#ready.size) this.#compactReady();
  }

  /**
   * Makes `item` wait until `at`, replacing any earlier due time and taking
   * it out of the ready queue.
   */
  addAt(item: T, at: number): void {
    this.#ready.delete(item);
    const ticket = this.#tickets++;
    this.#waiting.set(item, ticket);
    this.#due.push({ at, seq: ticket, item, ticket });
    if (this.#due.size > COMPACT_MIN && this.#due.size > 2 * this.#waiting.size) {
      this.#due.filter((s) => this.#isCurrent(s));
    }
  }

  /** Takes `item` out of the queue, wherever it waits. */
  delete(item: T): void {
    this.#ready.delete(item);
    this.#waiting.delete(item);
  }

  /** Makes every item due at or before `now` ready, in due-time order. */
  promoteDue(now: number): void {
    for (let top = this.#due.peek(); top !== undefined && top.at <= now; top = this.#due.peek()) {
      this.#due.pop();
      if (this.#isCurrent(top)) this.add(top.item);
    }
  }

  /** The earliest due time of a waiting item, if any. */
  nextDue(): number | undefined {
    for (let top = this.#due.peek(); top !== undefined; top = this.#due.peek()) {
      if (this.#isCurrent(top)) return top.at;
      this.#due.pop();
    }
    return undefined;
  }

  /** Takes the first ready item out of the queue. */
  pop(): T | undefined {
    while (this.#readyHead < this.#readyList.length) {
      const position = this.#readyBase + this.#readyHead;
      const item = this.#readyList[this.#readyHead++];
      if (this.#ready.get(item) !== position) continue;
      this.#ready.delete(item);
      if (this.#readyHead > COMPACT_MIN && this.#readyHead * 2 > this.#readyList.length) {
        this.#readyList = this.#readyList.slice(this.#readyHead);
        this.#readyBase += this.#readyHead;
        this.#readyHead = 0;
      }
      return item;
    }
    this.#readyBase += this.#readyList.length;
    this.#readyList = [];
    this.#readyHead = 0;
    return undefined;
  }

  #isCurrent(scheduled: Scheduled<T>): boolean {
    return this.#waiting.get(scheduled.item) === scheduled.ticket;
  }

  /** Rebuilds the ready list from the items still ready, in order. */
  #compactReady(): void {
    const kept: T[] = [];
    for (let i = this.#readyHead; i < this.#readyList.length; i++) {
      const item = this.#readyList[i];
      if (this.#ready.get(item) === this.#readyBase + i) kept.push(item);
    }
    this.#readyBase += this.#readyList.length;
    this.#readyList = kept;
    this.#readyHead = 0;
    for (let i = 0; i < kept.length; i++) this.#ready.set(kept[i], this.#readyBase + i);
  }

  /** Slots the queue holds, live or left over (for tests of its bounds). */
  slots(): { ready: number; due: number } {
    return { ready: this.#readyList.length - this.#readyHead, due: this.#due.size };
  }
}
