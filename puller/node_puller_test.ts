import { assert, assertEquals, assertRejects, assertThrows } from "../testing/assert.ts";
import { FakeClock } from "../time/clock.ts";
import { PullError } from "./errors.ts";
import { DesiredImages } from "../images/desired_images.ts";
import { type LogFields, nullLogger, recordingLogger } from "../log/logger.ts";
import { NodePuller, type NodePullerOptions, type PullFinished } from "./node_puller.ts";
import type { PullOptions, PullResult, PullStrategy } from "./strategy.ts";

const ALPINE = "docker.io/library/alpine:3.19";
const BUSYBOX = "docker.io/library/busybox:latest";
const DIGEST = "sha256:" + "a".repeat(64);
const PINNED = `docker.io/library/nginx@${DIGEST}`;
const PINNED_TAGGED = `docker.io/library/nginx:1.27@${DIGEST}`;

type Outcome = { result: PullResult } | { error: unknown };

/** One call the fake strategy received. */
interface Call {
  readonly ref: string;
  readonly refresh: boolean;
  readonly trusted?: boolean;
  readonly signal: AbortSignal;
  readonly at: number;
  settled: boolean;
  settle(outcome: Outcome): void;
}

/** What the fake strategy does with the n-th call (0-based) for a reference. */
type Plan = (ref: string, n: number) => ({ afterMs: number } & Outcome) | "manual";

/**
 * An in-memory PullStrategy. By default every call waits for the test to
 * settle it; a plan settles calls on the fake clock. Like a real strategy, it
 * gives up (rejects with the signal's reason) once its signal aborts, unless
 * told to linger.
 */
class FakeStrategy implements PullStrategy {
  readonly name = "fake";
  readonly calls: Call[] = [];
  current = 0;
  maxConcurrent = 0;
  sameRefOverlap = false;
  readonly #active = new Set<string>();
  readonly #counts = new Map<string, number>();

  constructor(
    readonly clock: FakeClock,
    readonly plan: Plan = () => "manual",
    readonly settleOnAbort = true,
  ) {}

  pull(ref: string, { signal, refresh, trusted }: PullOptions): Promise<PullResult> {
    const n = this.#counts.get(ref) ?? 0;
    this.#counts.set(ref, n + 1);
    if (this.#active.has(ref)) this.sameRefOverlap = true;
    this.#active.add(ref);
    this.current++;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.current);
    return new Promise((resolve, reject) => {
      const call: Call = {
        ref,
        refresh,
        trusted,
        signal,
        at: this.clock.now(),
        settled: false,
        settle: (outcome) => {
          if (call.settled) return;
          call.settled = true;
          this.current--;
          this.#active.delete(ref);
          if ("result" in outcome) resolve(outcome.result);
          else reject(outcome.error);
        },
      };
      this.calls.push(call);
      if (this.settleOnAbort) {
        signal.addEventListener("abort", () => call.settle({ error: signal.reason }), {
          once: true,
        });
      }
      const step = this.plan(ref, n);
      if (step !== "manual") {
        this.clock.sleep(step.afterMs, signal).then(() => call.settle(step), () => {});
      }
    });
  }

  callsFor(ref: string): Call[] {
    return this.calls.filter((call) => call.ref === ref);
  }

  last(ref: string): Call {
    const calls = this.callsFor(ref);
    assert(calls.length > 0, `no call for ${ref}`);
    return calls[calls.length - 1];
  }
}

const ok = (digest = DIGEST): Outcome => ({ result: { digest } });
const pullError = (ref: string, options: { permanent?: boolean } = {}) =>
  new PullError(ref, options.permanent ? "NoMatchingPlatform" : "ErrImagePull", "Pull failed", {
    permanent: options.permanent,
  });

interface Harness {
  clock: FakeClock;
  desired: DesiredImages;
  strategy: FakeStrategy;
  puller: NodePuller;
  log: ReturnType<typeof recordingLogger>;
  started: string[];
  finished: Array<{ ref: string } & PullFinished>;
  running: Promise<void>;
  /** Aborts the run without waiting. */
  abort(): void;
  /** Aborts the run, settles attempts that linger, and waits for run() to resolve. */
  stop(): Promise<void>;
}

/** Starts a NodePuller on fake time with `images` desired from the start. */
async function start(
  options: {
    images?: string[];
    plan?: Plan;
    settleOnAbort?: boolean;
    desired?: DesiredImages;
  } & Partial<NodePullerOptions> = {},
): Promise<Harness> {
  const clock = new FakeClock(1_000_000);
  const desired = options.desired ?? new DesiredImages();
  if (options.images) desired.set("static/", options.images);
  const strategy = new FakeStrategy(clock, options.plan, options.settleOnAbort ?? true);
  const log = recordingLogger();
  const started: string[] = [];
  const finished: Harness["finished"] = [];
  const puller = new NodePuller({
    node: "node-1",
    strategy,
    desired,
    log,
    clock,
    maxConcurrentPulls: 2,
    pullTimeoutMs: 600_000,
    backoffMaxMs: 3_600_000,
    backoffBaseMs: 1_000,
    random: () => 0.5,
    resyncPeriodMs: 0,
    onPullStarted: (ref) => started.push(ref),
    onPullFinished: (ref, result) => finished.push({ ref, ...result }),
    ...options,
  });
  const controller = new AbortController();
  const running = puller.run(controller.signal);
  await clock.flush();
  return {
    clock,
    desired,
    strategy,
    puller,
    log,
    started,
    finished,
    running,
    abort: () => controller.abort(),
    stop: async () => {
      controller.abort();
      // Attempts told to linger past their abort settle now, as a real
      // strategy eventually does once its pod is gone.
      for (const call of strategy.calls) call.settle({ error: call.signal.reason });
      await running;
    },
  };
}

function linesWith(log: { lines: LogFields[] }, msg: string): LogFields[] {
  return log.lines.filter((line) => line.msg === msg);
}

Deno.test("NodePuller pulls every desired image and reports it present", async () => {
  const h = await start({ images: [ALPINE, BUSYBOX] });
  assertEquals(h.strategy.calls.map((c) => [c.ref, c.refresh]), [[ALPINE, false], [
    BUSYBOX,
    false,
  ]]);
  assertEquals(h.puller.inFlight(), 2);
  assertEquals(h.puller.status().map((s) => s.state), ["pulling", "pulling"]);
  assertEquals(h.puller.allPresent(), false);

  await h.clock.advance(1_500);
  h.strategy.last(ALPINE).settle(ok());
  h.strategy.last(BUSYBOX).settle({ result: {} });
  await h.clock.flush();

  assertEquals(h.puller.inFlight(), 0);
  assertEquals(h.puller.allPresent(), true);
  assertEquals(h.puller.status(), [
    {
      ref: ALPINE,
      state: "present",
      attempts: 1,
      consecutiveFailures: 0,
      trusted: true,
      lastAttempt: 1_000_000,
      lastSuccess: 1_001_500,
      digest: DIGEST,
      everPresent: true,
    },
    {
      ref: BUSYBOX,
      state: "present",
      attempts: 1,
      consecutiveFailures: 0,
      trusted: true,
      lastAttempt: 1_000_000,
      lastSuccess: 1_001_500,
      everPresent: true,
    },
  ]);
  assertEquals(h.started, [ALPINE, BUSYBOX]);
  assertEquals(h.finished.map((f) => [f.ref, f.ok, f.durationMs]), [
    [ALPINE, true, 1_500],
    [BUSYBOX, true, 1_500],
  ]);
  assertEquals(linesWith(h.log, "Image pulled").map((l) => [l.image, l.node]), [
    [ALPINE, "node-1"],
    [BUSYBOX, "node-1"],
  ]);
  await h.stop();
});

Deno.test("NodePuller starts a pull for an added image without any time passing", async () => {
  const h = await start({ images: [], maxConcurrentPulls: 1 });
  h.desired.set("configmap/ns/a", ["alpine:3.19"]);
  await h.clock.flush();
  assertEquals(h.started, [ALPINE]);
  assertEquals(h.puller.status().map((s) => s.state), ["pulling"]);
  await h.stop();
});

Deno.test("NodePuller retries a failed pull after an exponential backoff capped at the maximum", async () => {
  const h = await start({
    images: [ALPINE],
    backoffBaseMs: 1_000,
    backoffMaxMs: 8_000,
    plan: (ref) => ({ afterMs: 0, error: pullError(ref) }),
  });
  await h.clock.advance(40_000);
  const gaps = h.strategy.calls.slice(1).map((c, i) => c.at - h.strategy.calls[i].at);
  assertEquals(gaps, [1_000, 2_000, 4_000, 8_000, 8_000, 8_000, 8_000]);
  assert(h.strategy.calls.every((c) => !c.refresh));
  const [status] = h.puller.status();
  assertEquals(status.state, "failed");
  assertEquals(status.attempts, 8);
  assertEquals(status.consecutiveFailures, 8);
  assertEquals(status.lastErrorReason, "ErrImagePull");
  assertEquals(status.nextAttempt, h.strategy.calls[7].at + 8_000);
  assertEquals(h.finished.every((f) => !f.ok && f.error?.reason === "ErrImagePull"), true);
  await h.stop();
});

Deno.test("NodePuller spreads retry delays within the jitter bounds", async (t) => {
  const cases = [
    { name: "lowest jitter", random: 0, gaps: [800, 1_600, 3_200] },
    { name: "no jitter offset", random: 0.5, gaps: [1_000, 2_000, 4_000] },
    { name: "highest jitter", random: 1, gaps: [1_200, 2_400, 4_800] },
  ];
  for (const { name, random, gaps } of cases) {
    await t.step(name, async () => {
      const h = await start({
        images: [ALPINE],
        random: () => random,
        plan: (ref) => ({ afterMs: 0, error: pullError(ref) }),
      });
      await h.clock.advance(9_000);
      const calls = h.strategy.calls;
      assertEquals(calls.slice(1, 4).map((c, i) => c.at - calls[i].at), gaps);
      await h.stop();
    });
  }
});

Deno.test("NodePuller forgets the backoff after a success", async () => {
  const h = await start({
    images: [ALPINE],
    resyncPeriodMs: 100_000,
    plan: (ref, n) => ({ afterMs: 0, ...(n === 2 ? ok() : { error: pullError(ref) }) }),
  });
  // Failures at 0 and +1s, success at +3s, resync at +103s fails, retried 1 s later.
  await h.clock.advance(104_000);
  const at = h.strategy.calls.map((c) => c.at - 1_000_000);
  assertEquals(at, [0, 1_000, 3_000, 103_000, 104_000]);
  assertEquals(h.strategy.calls.map((c) => c.refresh), [false, false, false, true, true]);
  await h.stop();
});

Deno.test("NodePuller warns once per failure streak and logs repeats at debug", async () => {
  const h = await start({
    images: [ALPINE],
    plan: (ref, n) => ({
      afterMs: 0,
      error: n < 3 ? pullError(ref) : new PullError(ref, "Unauthorized", "Denied"),
    }),
  });
  await h.clock.advance(20_000);
  const failures = linesWith(h.log, "Pull failed; will retry");
  assertEquals(failures.map((l) => [l.level, l.reason]), [
    ["warn", "ErrImagePull"],
    ["debug", "ErrImagePull"],
    ["debug", "ErrImagePull"],
    ["warn", "Unauthorized"],
    ["debug", "Unauthorized"],
  ]);
  assertEquals(failures[0].image, ALPINE);
  assertEquals(failures[0].retryIn, "1s");
  await h.stop();
});

Deno.test("NodePuller parks a permanent failure at the maximum backoff and warns once", async () => {
  const h = await start({
    images: [ALPINE],
    backoffMaxMs: 3_600_000,
    plan: (ref) => ({ afterMs: 0, error: pullError(ref, { permanent: true }) }),
  });
  assertEquals(h.strategy.calls.length, 1);
  const [status] = h.puller.status();
  assertEquals(status.state, "failed");
  assertEquals(status.permanent, true);
  assertEquals(status.lastErrorReason, "NoMatchingPlatform");
  assertEquals(status.nextAttempt, 1_000_000 + 3_600_000);

  await h.clock.advance(3_600_000 - 1);
  assertEquals(h.strategy.calls.length, 1);
  await h.clock.advance(1);
  assertEquals(h.strategy.calls.length, 2);
  await h.clock.advance(2 * 3_600_000);
  assertEquals(h.strategy.calls.length, 4);
  const parked = linesWith(h.log, "Pull failed permanently; parked");
  assertEquals(parked.map((l) => l.level), ["warn", "debug", "debug", "debug"]);
  assertEquals(parked[0].reason, "NoMatchingPlatform");
  await h.stop();
});

Deno.test("NodePuller aborts an attempt at the timeout and counts it as a Timeout failure", async () => {
  const h = await start({ images: [ALPINE], pullTimeoutMs: 10_000, backoffBaseMs: 5_000 });
  const first = h.strategy.last(ALPINE);
  await h.clock.advance(9_999);
  assertEquals(first.signal.aborted, false);
  await h.clock.advance(1);
  assertEquals(first.signal.aborted, true);
  assertEquals((first.signal.reason as DOMException).name, "TimeoutError");

  const [status] = h.puller.status();
  assertEquals(status.state, "failed");
  assertEquals(status.lastErrorReason, "Timeout");
  assertEquals(status.lastError, `Pull of "${ALPINE}" did not finish within 10s`);
  assertEquals(h.finished[0].error?.reason, "Timeout");
  assertEquals(h.finished[0].durationMs, 10_000);
  assertEquals(h.puller.inFlight(), 0);

  await h.clock.advance(5_000);
  assertEquals(h.strategy.calls.length, 2);
  await h.stop();
});

Deno.test("NodePuller counts an attempt that ignores the abort as in flight until it settles", async () => {
  const h = await start({
    images: [ALPINE, BUSYBOX],
    maxConcurrentPulls: 1,
    pullTimeoutMs: 10_000,
    settleOnAbort: false,
  });
  await h.clock.advance(60_000);
  assertEquals(h.strategy.calls.map((c) => c.ref), [ALPINE]);
  assertEquals(h.puller.inFlight(), 1);
  h.strategy.last(ALPINE).settle({ error: pullError(ALPINE) });
  await h.clock.flush();
  assertEquals(h.puller.status()[0].lastErrorReason, "Timeout");
  assertEquals(h.strategy.calls.map((c) => c.ref), [ALPINE, BUSYBOX]);
  await h.stop();
});

Deno.test("NodePuller never runs more pulls at once than the limit over 50 images", async () => {
  const images = Array.from({ length: 50 }, (_, i) => `registry.example.com/team/app-${i}:v1`);
  const h = await start({
    images,
    maxConcurrentPulls: 3,
    backoffBaseMs: 50,
    // Durations from 1 to 97 ms; every fifth image fails its first attempt.
    plan: (ref, n) => {
      const i = Number(ref.match(/app-(\d+)/)![1]);
      const afterMs = 1 + (i * 37) % 97;
      return n === 0 && i % 5 === 0 ? { afterMs, error: pullError(ref) } : { afterMs, ...ok() };
    },
  });
  let steps = 0;
  while (!h.puller.allPresent() && steps++ < 10_000) {
    assert(h.puller.inFlight() <= 3);
    await h.clock.advance(1);
  }
  assertEquals(h.puller.allPresent(), true);
  assertEquals(h.strategy.maxConcurrent, 3);
  assertEquals(h.strategy.sameRefOverlap, false);
  assertEquals(h.strategy.calls.length, 60);
  assertEquals(h.started.length, h.finished.length);
  await h.stop();
});

Deno.test("NodePuller aborts the in-flight pull of a removed image and forgets it", async () => {
  const h = await start({ images: [], maxConcurrentPulls: 1 });
  h.desired.set("configmap/ns/a", [ALPINE]);
  h.desired.set("configmap/ns/b", [BUSYBOX]);
  await h.clock.flush();
  const call = h.strategy.last(ALPINE);

  h.desired.delete("configmap/ns/a");
  assertEquals(call.signal.aborted, true);
  assertEquals((call.signal.reason as DOMException).name, "AbortError");
  await h.clock.flush();
  assertEquals(h.puller.status().map((s) => s.ref), [BUSYBOX]);
  assertEquals(h.finished, [{ ref: ALPINE, ok: false, durationMs: 0, cancelled: true }]);
  assertEquals(h.strategy.calls.map((c) => c.ref), [ALPINE, BUSYBOX]);

  h.desired.delete("configmap/ns/b");
  await h.clock.advance(24 * 3_600_000);
  assertEquals(h.strategy.calls.length, 2);
  assertEquals(h.puller.status(), []);
  assertEquals(h.puller.allPresent(), true);
  await h.stop();
});

Deno.test("NodePuller never pulls a queued image that was removed before its turn", async () => {
  const h = await start({ images: [], maxConcurrentPulls: 1 });
  h.desired.set("configmap/ns/a", [ALPINE]);
  h.desired.set("configmap/ns/b", [BUSYBOX]);
  await h.clock.flush();
  h.desired.delete("configmap/ns/b");
  h.strategy.last(ALPINE).settle(ok());
  await h.clock.advance(60_000);
  assertEquals(h.strategy.calls.map((c) => c.ref), [ALPINE]);
  await h.stop();
});

Deno.test("NodePuller waits for a removed image's attempt to settle before pulling it again", async () => {
  const h = await start({ images: [ALPINE], settleOnAbort: false });
  const first = h.strategy.last(ALPINE);
  h.desired.delete("static/");
  h.desired.set("static/", [ALPINE]);
  await h.clock.flush();
  assertEquals(first.signal.aborted, true);
  assertEquals(h.strategy.calls.length, 1);
  assertEquals(h.puller.status().map((s) => s.state), ["pending"]);

  first.settle({ error: first.signal.reason });
  await h.clock.flush();
  assertEquals(h.strategy.calls.length, 2);
  assertEquals(h.strategy.sameRefOverlap, false);
  assertEquals(h.strategy.last(ALPINE).signal.aborted, false);
  await h.stop();
});

Deno.test("NodePuller pulls a tag again with refresh every resync period after its last success", async () => {
  const h = await start({
    images: [ALPINE],
    resyncPeriodMs: 60_000,
    plan: () => ({ afterMs: 1_000, ...ok() }),
  });
  await h.clock.advance(1_000);
  assertEquals(h.puller.status()[0].nextAttempt, 1_000_000 + 61_000);
  await h.clock.advance(59_999);
  assertEquals(h.strategy.calls.length, 1);
  await h.clock.advance(1);
  assertEquals(h.strategy.calls.map((c) => c.refresh), [false, true]);
  assertEquals(h.puller.status()[0].state, "pulling");
  assertEquals(h.puller.allPresent(), true);
  await h.clock.advance(1_000 + 60_000);
  assertEquals(h.strategy.calls.length, 3);
  assertEquals(linesWith(h.log, "Image pulled").length, 1);
  assertEquals(linesWith(h.log, "Image refreshed").length, 1);
  await h.stop();
});

Deno.test("NodePuller spreads resync by ±10 % so nodes do not pull in step", async (t) => {
  for (const [random, due] of [[0, 54_000], [0.5, 60_000], [1, 66_000]] as const) {
    await t.step(`random ${random} → resync ${due} ms after success`, async () => {
      const h = await start({
        images: [ALPINE],
        resyncPeriodMs: 60_000,
        random: () => random,
        plan: () => ({ afterMs: 1_000, ...ok() }),
      });
      await h.clock.advance(1_000);
      assertEquals(h.puller.status()[0].nextAttempt, 1_000_000 + 1_000 + due);
      await h.stop();
    });
  }
});

Deno.test("NodePuller starts no pull for digest-pinned images the node reports, at start or resync", async () => {
  const reported = new Set([PINNED, `docker.io/library/nginx@${DIGEST}`]);
  const h = await start({
    images: [PINNED, PINNED_TAGGED],
    resyncPeriodMs: 60_000,
    presentImages: () => reported,
    plan: () => ({ afterMs: 0, ...ok() }),
  });
  assertEquals(h.puller.allPresent(), true);
  await h.clock.advance(10 * 60_000);
  assertEquals(h.strategy.calls.length, 0);
  assertEquals(h.started.length, 0);
  assertEquals(h.puller.status().map((s) => [s.state, s.attempts]), [
    ["present", 0],
    ["present", 0],
  ]);
  await h.stop();
});

Deno.test("NodePuller pulls a digest-pinned image the node does not report at most once per period", async () => {
  const reported = new Set<string>();
  const h = await start({
    images: [PINNED],
    resyncPeriodMs: 60_000,
    presentImages: () => reported,
    plan: () => ({ afterMs: 0, ...ok() }),
  });
  assertEquals(h.strategy.calls.length, 1);
  await h.clock.advance(3 * 60_000);
  assertEquals(h.strategy.calls.map((c) => c.at - 1_000_000), [0, 60_000, 120_000, 180_000]);

  // Once the node reports it, resync stops pulling it.
  reported.add(PINNED);
  await h.clock.advance(3 * 60_000);
  assertEquals(h.strategy.calls.length, 4);
  await h.stop();
});

Deno.test("NodePuller treats a failing digest-pinned image as present once the node reports it", async () => {
  const reported = new Set<string>();
  const h = await start({
    images: [PINNED],
    presentImages: () => reported,
    plan: (ref) => ({ afterMs: 0, error: pullError(ref) }),
  });
  assertEquals(h.puller.status()[0].state, "failed");
  reported.add(PINNED);
  await h.clock.advance(1_000);
  assertEquals(h.strategy.calls.length, 1);
  assertEquals(h.puller.status()[0].state, "present");
  assertEquals(h.puller.allPresent(), true);
  await h.stop();
});

Deno.test("NodePuller trusts a digest it pulled while the node's list is full, and rechecks it every 6 h", async (t) => {
  for (const complete of [false, true]) {
    await t.step(complete ? "complete list: absence means gone" : "full list", async () => {
      const h = await start({
        images: [PINNED],
        resyncPeriodMs: 60_000,
        presentImages: () => new Set<string>(),
        presentImagesComplete: () => complete,
        plan: () => ({ afterMs: 0, ...ok() }),
      });
      await h.clock.advance(60 * 60_000);
      // Pulled once; then, with a full list, no pod per resync for an hour.
      assertEquals(h.strategy.calls.length, complete ? 61 : 1);
      if (!complete) {
        await h.clock.advance(5 * 3_600_000);
        assertEquals(h.strategy.calls.length, 2, "rechecked after 6 h");
      }
      await h.stop();
    });
  }
});

Deno.test("NodePuller never pulls again when resync is disabled", async () => {
  const h = await start({
    images: [ALPINE, PINNED],
    resyncPeriodMs: 0,
    plan: () => ({ afterMs: 0, ...ok() }),
  });
  await h.clock.advance(7 * 24 * 3_600_000);
  assertEquals(h.strategy.calls.length, 2);
  assertEquals(h.puller.status().map((s) => s.nextAttempt), [undefined, undefined]);
  await h.stop();
});

Deno.test("NodePuller aborts in-flight pulls on shutdown, waits for them and starts no more", async () => {
  const h = await start({ images: [ALPINE, BUSYBOX, PINNED], maxConcurrentPulls: 2 });
  const calls = [...h.strategy.calls];
  assertEquals(calls.length, 2);
  await h.stop();
  assert(calls.every((c) => c.signal.aborted && c.settled));
  assertEquals(h.puller.inFlight(), 0);
  assertEquals(h.finished.map((f) => f.cancelled), [true, true]);
  h.desired.set("configmap/ns/late", ["late:1"]);
  await h.clock.advance(3_600_000);
  assertEquals(h.strategy.calls.length, 2);
  assertEquals(h.clock.pendingTimers(), 0);
  assertEquals(linesWith(h.log, "Node puller stopped").length, 1);
});

Deno.test("NodePuller's run() waits for an attempt that settles late on shutdown", async () => {
  const h = await start({ images: [ALPINE], settleOnAbort: false });
  const call = h.strategy.last(ALPINE);
  let resolved = false;
  const stopping = h.running.then(() => resolved = true);
  h.abort();
  await h.clock.flush();
  assertEquals(resolved, false);
  assertEquals(call.signal.aborted, true);
  call.settle({ error: call.signal.reason });
  await stopping;
  assertEquals(resolved, true);
});

Deno.test("NodePuller heals a missed change notification from the desired set", async () => {
  /** A desired set whose change notifications are lost. */
  class DeafDesiredImages extends DesiredImages {
    override subscribe(): () => void {
      return () => {};
    }
  }
  const desired = new DeafDesiredImages();
  desired.set("static/", [ALPINE]);
  const h = await start({ desired, plan: () => ({ afterMs: 0, ...ok() }) });
  assertEquals(h.started, [ALPINE]);
  desired.set("configmap/ns/b", [BUSYBOX]);
  desired.delete("static/");
  await h.clock.advance(60_000);
  assertEquals(h.started, [ALPINE, BUSYBOX]);
  assertEquals(h.puller.status().map((s) => s.ref), [BUSYBOX]);
  assertEquals(linesWith(h.log, "Work set repaired from the desired images").length, 1);
  await h.stop();
});

Deno.test("NodePuller counts a strategy's non-PullError throw as a RuntimeError failure", async (t) => {
  const cases = [
    { name: "rejected promise", sync: false },
    { name: "synchronous throw", sync: true },
  ];
  for (const { name, sync } of cases) {
    await t.step(name, async () => {
      const clock = new FakeClock();
      const desired = new DesiredImages();
      desired.set("static/", [ALPINE]);
      const strategy: PullStrategy = {
        name: "broken",
        pull: (): Promise<PullResult> => {
          if (sync) throw new TypeError("boom");
          return Promise.reject(new TypeError("boom"));
        },
      };
      const puller = new NodePuller({
        node: "n",
        strategy,
        desired,
        log: nullLogger,
        clock,
        maxConcurrentPulls: 1,
        pullTimeoutMs: 1_000,
        backoffMaxMs: 10_000,
        resyncPeriodMs: 0,
      });
      const controller = new AbortController();
      const running = puller.run(controller.signal);
      await clock.flush();
      const [status] = puller.status();
      assertEquals(status.state, "failed");
      assertEquals(status.lastErrorReason, "RuntimeError");
      assertEquals(status.lastError, `Pull of "${ALPINE}" failed: boom`);
      controller.abort();
      await running;
    });
  }
});

Deno.test("NodePuller keeps going when a hook throws", async () => {
  const h = await start({
    images: [ALPINE],
    plan: () => ({ afterMs: 0, ...ok() }),
    onPullStarted: () => {
      throw new Error("metrics broke");
    },
  });
  assertEquals(h.puller.allPresent(), true);
  assertEquals(linesWith(h.log, "Pull hook failed")[0].error, "metrics broke");
  await h.stop();
});

Deno.test("NodePuller handles 2,000 images and churn with each change starting at once", async () => {
  const images = Array.from({ length: 2_000 }, (_, i) => `registry.example.com/app-${i}:v1`);
  const h = await start({
    images,
    maxConcurrentPulls: 4,
    plan: () => ({ afterMs: 1, ...ok() }),
  });
  await h.clock.advance(500);
  assertEquals(h.puller.allPresent(), true);
  for (let i = 0; i < 100; i++) {
    h.desired.set(`configmap/ns/churn-${i}`, [`registry.example.com/churn-${i}:v1`]);
    h.desired.delete(`configmap/ns/churn-${i - 1}`);
    await h.clock.flush();
    assertEquals(h.started[h.started.length - 1], `registry.example.com/churn-${i}:v1`);
  }
  assertEquals(h.puller.status().length, 2_001);
  assert(h.strategy.maxConcurrent <= 4);
  await h.stop();
});

Deno.test("NodePuller rejects limits out of range", async (t) => {
  const base = {
    node: "n",
    strategy: new FakeStrategy(new FakeClock()),
    desired: new DesiredImages(),
    log: nullLogger,
    maxConcurrentPulls: 1,
    pullTimeoutMs: 1_000,
    backoffMaxMs: 1_000,
    resyncPeriodMs: 0,
  };
  const cases = [
    { name: "no concurrency", override: { maxConcurrentPulls: 0 } },
    { name: "fractional concurrency", override: { maxConcurrentPulls: 1.5 } },
    { name: "zero timeout", override: { pullTimeoutMs: 0 } },
    { name: "negative resync", override: { resyncPeriodMs: -1 } },
    { name: "zero backoff cap", override: { backoffMaxMs: 0 } },
  ];
  for (const { name, override } of cases) {
    await t.step(name, () => {
      assertThrows(() => new NodePuller({ ...base, ...override }), RangeError);
    });
  }
});

Deno.test("NodePuller.run() refuses to run twice", async () => {
  const h = await start({ images: [] });
  await assertRejects(() => h.puller.run(new AbortController().signal), Error, "twice");
  await h.stop();
});

Deno.test("NodePuller tells the strategy whether a trusted origin asks for each image", async () => {
  const desired = new DesiredImages();
  desired.set("configmap/tenant/list", [BUSYBOX]);
  const h = await start({ images: [ALPINE], desired });
  assertEquals(h.strategy.calls.map((c) => [c.ref, c.trusted]), [
    [ALPINE, true],
    [BUSYBOX, false],
  ]);
  assertEquals(h.puller.status().map((s) => s.trusted), [true, false]);
  await h.stop();
});

Deno.test("NodePuller retries at once, with credentials, an image that failed untrusted when a trusted origin asks for it", async () => {
  const desired = new DesiredImages();
  desired.set("configmap/tenant/list", [BUSYBOX]);
  const h = await start({ desired });
  h.strategy.last(BUSYBOX).settle({ error: pullError(BUSYBOX) });
  await h.clock.flush();
  assertEquals(h.puller.status()[0].state, "failed");
  assert(h.puller.status()[0].nextAttempt! > h.clock.now());
  desired.set("static/--image", [BUSYBOX]);
  await h.clock.flush();
  assertEquals(h.strategy.callsFor(BUSYBOX).map((c) => c.trusted), [false, true]);
  assertEquals(h.strategy.last(BUSYBOX).at, h.clock.now());
  await h.stop();
});

Deno.test("NodePuller starts first the images asked for by more objects, and setConcurrency raises the limit", async () => {
  const desired = new DesiredImages();
  desired.set("cm/a", [ALPINE]);
  desired.set("cm/b", [BUSYBOX, "docker.io/library/nginx:1"]);
  desired.set("cm/c", [BUSYBOX, "docker.io/library/nginx:1"]);
  desired.set("cm/d", ["docker.io/library/nginx:1"]);
  const h = await start({ desired, maxConcurrentPulls: 1 });
  // nginx (3 objects), then busybox (2), then alpine (1), one at a time.
  assertEquals(h.strategy.calls.map((c) => c.ref), ["docker.io/library/nginx:1"]);
  h.puller.setConcurrency(3);
  await h.clock.flush();
  assertEquals(h.strategy.calls.map((c) => c.ref), [
    "docker.io/library/nginx:1",
    BUSYBOX,
    ALPINE,
  ]);
  assertEquals(h.puller.inFlight(), 3);
});

Deno.test("NodePuller with a tag ledger: a non-canary node holding the ledger digest never pulls; the canary pulls every period", async () => {
  const D1 = "sha256:" + "1".repeat(64);
  let canary = "node-2";
  const held = new Set([`${ALPINE}@${D1}`]);
  const skipped: string[] = [];
  const h = await start({
    images: [ALPINE],
    plan: () => ({ afterMs: 10, ...ok(D1) }),
    resyncPeriodMs: 60_000,
    resyncJitter: 0,
    ledger: () => ({ canary, digest: D1 }),
    presentTagDigests: () => held,
    onLedgerSkip: (ref) => skipped.push(ref),
  });
  await h.clock.advance(60_000 * 3 + 1);
  assertEquals(h.strategy.calls.length, 0, "three periods, no pull");
  assertEquals(skipped.length, 4, "looked at once at start and once per period");
  assertEquals(h.puller.allPresent(), true);
  assertEquals(h.puller.status()[0].ledgerDigest, D1);
  assertEquals(h.puller.status()[0].canary, false);
  assertEquals(h.puller.ledgerDrift(), []);
  // This node becomes the canary: it checks the registry each period.
  canary = "node-1";
  await h.clock.advance(60_000);
  assertEquals(h.strategy.calls.map((c) => c.refresh), [true]);
  await h.clock.advance(60_000 + 10);
  assertEquals(h.strategy.calls.length, 2);
  await h.stop();
});

Deno.test("NodePuller with a tag ledger pulls a tag whose copy on the node has another digest, at once on recheck()", async () => {
  const D1 = "sha256:" + "1".repeat(64);
  const D2 = "sha256:" + "2".repeat(64);
  let digest = D1;
  const held = new Set([`${ALPINE}@${D1}`]);
  const h = await start({
    images: [ALPINE, BUSYBOX],
    plan: () => ({ afterMs: 10, ...ok(digest) }),
    resyncPeriodMs: 600_000,
    resyncJitter: 0,
    ledger: (ref) => ref === ALPINE ? { canary: "node-2", digest } : undefined,
    presentTagDigests: () => held,
  });
  await h.clock.advance(20);
  assertEquals(h.strategy.calls.map((c) => c.ref), [BUSYBOX], "no ledger for busybox: pulled");
  // The tag moved: the ledger says D2, the node still has D1.
  digest = D2;
  assertEquals(h.puller.ledgerDrift(), [ALPINE]);
  h.puller.recheck([ALPINE]);
  await h.clock.flush();
  assertEquals(h.strategy.callsFor(ALPINE).map((c) => c.refresh), [true], "pulled at once");
  await h.clock.advance(10);
  held.add(`${ALPINE}@${D2}`);
  assertEquals(h.puller.ledgerDrift(), []);
  assertEquals(h.puller.status().find((s) => s.ref === ALPINE)?.digest, D2);
  await h.stop();
});

Deno.test("NodePuller with a tag ledger pulls every period when there is no canary (fallback) or the node list lacks the pair", async () => {
  const D1 = "sha256:" + "1".repeat(64);
  for (
    const [view, held] of [
      [{ digest: D1 }, new Set([`${ALPINE}@${D1}`])],
      [{ canary: "node-2", digest: D1 }, new Set<string>()],
    ] as const
  ) {
    const h = await start({
      images: [ALPINE],
      plan: () => ({ afterMs: 10, ...ok(D1) }),
      resyncPeriodMs: 60_000,
      resyncJitter: 0,
      ledger: () => view,
      presentTagDigests: () => held,
    });
    await h.clock.advance(60_000 * 2 + 100);
    assertEquals(h.strategy.calls.length, 3, JSON.stringify(view));
    await h.stop();
  }
});

Deno.test("NodePuller with a tag ledger on a node past the kubelet's cap trusts a tag it pulled at the ledger digest until the recheck", async () => {
  const D1 = "sha256:" + "1".repeat(64);
  const h = await start({
    images: [ALPINE],
    plan: () => ({ afterMs: 10, ...ok(`docker.io/library/alpine@${D1}`) }),
    resyncPeriodMs: 60_000,
    resyncJitter: 0,
    digestRecheckMs: 200_000,
    ledger: () => ({ canary: "node-2", digest: D1 }),
    presentTagDigests: () => new Set(),
    presentImagesComplete: () => false,
  });
  await h.clock.advance(10);
  assertEquals(h.strategy.calls.length, 1, "not listed, never pulled: pulled");
  await h.clock.advance(180_000);
  assertEquals(h.strategy.calls.length, 1, "pulled at the ledger digest: trusted for 200 s");
  await h.clock.advance(60_000);
  assertEquals(h.strategy.calls.length, 2, "recheck due: pulled again");
  await h.stop();
});

Deno.test("NodePuller.allPresent() follows images leaving and joining after all were present", async () => {
  const h = await start({ images: [] });
  h.desired.set("configmap/ns/a", [ALPINE]);
  h.desired.set("configmap/ns/b", [BUSYBOX]);
  await h.clock.flush();
  h.strategy.last(ALPINE).settle(ok());
  h.strategy.last(BUSYBOX).settle(ok());
  await h.clock.flush();
  assertEquals(h.puller.allPresent(), true);

  // A present image leaves and a new one joins: not all present until it is pulled.
  h.desired.delete("configmap/ns/a");
  h.desired.set("configmap/ns/c", ["nginx:1.27"]);
  await h.clock.flush();
  assertEquals(h.puller.allPresent(), false);
  h.strategy.last("docker.io/library/nginx:1.27").settle(ok());
  await h.clock.flush();
  assertEquals(h.puller.allPresent(), true);

  // The one that left comes back: it is desired anew, so it must be pulled again.
  h.desired.set("configmap/ns/a", [ALPINE]);
  await h.clock.flush();
  assertEquals(h.puller.allPresent(), false);
  // Leaving again while its pull runs leaves only present images.
  h.desired.delete("configmap/ns/a");
  await h.clock.flush();
  assertEquals(h.puller.allPresent(), true);
  await h.stop();
});
