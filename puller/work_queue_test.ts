import fc from "fast-check";
import { assert, assertEquals } from "../testing/assert.ts";
import { WorkQueue } from "./work_queue.ts";

function drain<T>(queue: WorkQueue<T>): T[] {
  const out: T[] = [];
  for (let item = queue.pop(); item !== undefined; item = queue.pop()) out.push(item);
  return out;
}

Deno.test("WorkQueue.pop() returns ready items first in, first out, each once", () => {
  const queue = new WorkQueue<string>();
  queue.add("a");
  queue.add("b");
  queue.add("a");
  queue.add("c");
  assertEquals(queue.readySize, 3);
  assertEquals(drain(queue), ["a", "b", "c"]);
  assertEquals(queue.pop(), undefined);
});

Deno.test("WorkQueue.delete() takes an item out, and adding it again puts it at the back", () => {
  const queue = new WorkQueue<string>();
  for (const item of ["a", "b", "c"]) queue.add(item);
  queue.delete("a");
  queue.add("a");
  queue.delete("b");
  assert(!queue.has("b"));
  assertEquals(drain(queue), ["c", "a"]);
});

Deno.test("WorkQueue.promoteDue() readies waiting items in due-time order, ties in order of scheduling", () => {
  const queue = new WorkQueue<string>();
  queue.addAt("late", 300);
  queue.addAt("first", 100);
  queue.addAt("second", 100);
  queue.add("ready");
  assertEquals(queue.nextDue(), 100);
  queue.promoteDue(99);
  assertEquals(drain(queue), ["ready"]);
  queue.promoteDue(100);
  assertEquals(drain(queue), ["first", "second"]);
  assertEquals(queue.nextDue(), 300);
  queue.promoteDue(1_000);
  assertEquals(drain(queue), ["late"]);
  assertEquals(queue.nextDue(), undefined);
});

Deno.test("WorkQueue.addAt() replaces an earlier due time and takes the item out of the ready queue", () => {
  const queue = new WorkQueue<string>();
  queue.addAt("a", 100);
  queue.addAt("a", 500);
  assertEquals(queue.nextDue(), 500, "the replaced due time no longer counts");
  queue.promoteDue(100);
  assertEquals(queue.pop(), undefined);
  queue.add("b");
  queue.addAt("b", 200);
  assertEquals(queue.pop(), undefined, "b waits instead");
  queue.promoteDue(500);
  assertEquals(drain(queue), ["b", "a"]);
});

Deno.test("WorkQueue.add() and delete() cancel a due time", () => {
  const queue = new WorkQueue<string>();
  queue.addAt("a", 100);
  queue.addAt("b", 100);
  queue.add("a");
  queue.delete("b");
  assertEquals(queue.waitingSize, 0);
  assertEquals(queue.nextDue(), undefined);
  queue.promoteDue(1_000);
  assertEquals(drain(queue), ["a"]);
});

Deno.test("WorkQueue keeps its slots bounded under churn of removed and rescheduled items", () => {
  const queue = new WorkQueue<object>();
  const live = Array.from({ length: 10 }, () => ({}));
  for (const item of live) queue.add(item);
  for (let round = 0; round < 20_000; round++) {
    const gone = {};
    queue.add(gone);
    queue.delete(gone);
    queue.addAt(live[round % live.length], 1_000 + round);
  }
  const { ready, due } = queue.slots();
  assert(ready <= 2_100, `ready slots ${ready}`);
  assert(due <= 2_100, `due slots ${due}`);
  assertEquals(queue.waitingSize, live.length);
  queue.promoteDue(Infinity);
  assertEquals(new Set(drain(queue)), new Set(live));
});

type Op =
  | { kind: "add"; item: number }
  | { kind: "addAt"; item: number; at: number }
  | { kind: "delete"; item: number }
  | { kind: "promote"; now: number }
  | { kind: "pop" };

Deno.test("WorkQueue behaves like a plain list-and-map model under any sequence of operations", () => {
  const item = fc.integer({ min: 0, max: 7 });
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant("add" as const), item }),
    fc.record({ kind: fc.constant("addAt" as const), item, at: fc.integer({ min: 0, max: 50 }) }),
    fc.record({ kind: fc.constant("delete" as const), item }),
    fc.record({ kind: fc.constant("promote" as const), now: fc.integer({ min: 0, max: 50 }) }),
    fc.record({ kind: fc.constant("pop" as const) }),
  );
  fc.assert(fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
    const queue = new WorkQueue<number>();
    // The model: a ready list, and due times with the order they were set in.
    let ready: number[] = [];
    const waiting = new Map<number, { at: number; seq: number }>();
    let seq = 0;
    for (const o of ops) {
      switch (o.kind) {
        case "add":
          queue.add(o.item);
          waiting.delete(o.item);
          if (!ready.includes(o.item)) ready.push(o.item);
          break;
        case "addAt":
          queue.addAt(o.item, o.at);
          ready = ready.filter((i) => i !== o.item);
          waiting.set(o.item, { at: o.at, seq: seq++ });
          break;
        case "delete":
          queue.delete(o.item);
          ready = ready.filter((i) => i !== o.item);
          waiting.delete(o.item);
          break;
        case "promote": {
          queue.promoteDue(o.now);
          const due = [...waiting].filter(([, w]) => w.at <= o.now)
            .sort(([, a], [, b]) => a.at - b.at || a.seq - b.seq);
          for (const [i] of due) {
            waiting.delete(i);
            if (!ready.includes(i)) ready.push(i);
          }
          break;
        }
        case "pop":
          assertEquals(queue.pop(), ready.shift());
          break;
      }
      assertEquals(queue.readySize, ready.length);
      assertEquals(queue.waitingSize, waiting.size);
      const next = Math.min(...[...waiting.values()].map((w) => w.at));
      assertEquals(queue.nextDue(), waiting.size === 0 ? undefined : next);
    }
  }));
});
