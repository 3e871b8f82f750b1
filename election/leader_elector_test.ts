/**
 * Leader election against the fake API server's Leases, on fake time: who
 * leads, when a standby may take over, and that a leader cut off from the
 * API server stops leading before its Lease can be taken.
 */
import { assert, assertEquals, assertThrows } from "../testing/assert.ts";
import { FakeClock } from "../time/clock.ts";
import { nullLogger, recordingLogger } from "../log/logger.ts";
import { type FakeApiServer, startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { waitFor } from "../testing/wait.ts";
import { LeaderElector, type LeaderElectorOptions, microTime } from "./leader_elector.ts";

const NS = "image-cache-daemon";
const LEASE = "image-cache-daemon-aggregator";
const T0 = Date.parse("2026-11-28T12:00:00Z");

interface Candidate {
  readonly elector: LeaderElector;
  readonly stop: AbortController;
  readonly done: Promise<void>;
  /** Fake times at which leadership started (true) or ended (false). */
  readonly changes: [boolean, number][];
}

function candidate(
  server: FakeApiServer,
  clock: FakeClock,
  identity: string,
  options: Partial<LeaderElectorOptions> = {},
): Candidate {
  const elector = new LeaderElector({
    kubeConfig: server.kubeConfig(),
    namespace: NS,
    name: LEASE,
    identity,
    log: nullLogger,
    clock,
    random: () => 0,
    ...options,
  });
  const changes: [boolean, number][] = [];
  elector.onChange((leading) => changes.push([leading, clock.now()]));
  const stop = new AbortController();
  return { elector, stop, done: elector.run(stop.signal), changes };
}

/**
 * Waits (in real time) until no candidate has a request to the API in
 * flight. With `mayHang`, a request to an API server that went away may never
 * answer: give it a moment, then let fake time move on regardless.
 */
async function settle(candidates: Candidate[], mayHang = false): Promise<void> {
  await waitFor(() => candidates.every((c) => !c.elector.status().requesting), {
    what: "lease requests to settle",
    timeoutMs: mayHang ? 200 : 10_000,
  }).catch((error) => {
    if (!mayHang) throw error;
  });
}

/** Moves fake time forward in steps, letting the candidates' requests finish after each. */
async function advance(
  clock: FakeClock,
  ms: number,
  candidates: Candidate[],
  options: { step?: number; mayHang?: boolean } = {},
) {
  const step = options.step ?? 250;
  for (let moved = 0; moved < ms; moved += step) {
    await clock.advance(Math.min(step, ms - moved));
    await settle(candidates, options.mayHang);
  }
}

function leaseSpec(server: FakeApiServer): Record<string, unknown> {
  return server.get("leases", NS, LEASE)!.spec as Record<string, unknown>;
}

async function withCluster(fn: (server: FakeApiServer, clock: FakeClock) => Promise<void>) {
  const server = await startFakeApiServer({ namespaces: ["default", NS] });
  try {
    await fn(server, new FakeClock(T0));
  } finally {
    await server.close();
  }
}

Deno.test("the first candidate creates the Lease as client-go does and renews it every retry period", async () => {
  await withCluster(async (server, clock) => {
    const a = candidate(server, clock, "pod-a");
    try {
      await waitFor(() => a.elector.isLeader(), { what: "pod-a leads" });
      assertEquals(leaseSpec(server), {
        holderIdentity: "pod-a",
        leaseDurationSeconds: 15,
        acquireTime: microTime(T0),
        renewTime: microTime(T0),
        leaseTransitions: 0,
      });
      await advance(clock, 2_000, [a]);
      assertEquals(leaseSpec(server).renewTime, "2026-11-28T12:00:02.000000Z");
      assertEquals(leaseSpec(server).acquireTime, microTime(T0));
      // Renewals write from the Lease the leader holds: no read per renewal.
      assertEquals(server.requests.counts()["get leases"], 1);
      assertEquals(server.requests.counts()["update leases"], 1);
    } finally {
      a.stop.abort();
      await a.done;
    }
  });
});

Deno.test("a standby takes over a crashed leader's Lease no sooner than a lease duration after it last saw a renewal, and within one retry period after", async () => {
  await withCluster(async (server, clock) => {
    const a = candidate(server, clock, "pod-a", { releaseOnCancel: false });
    await waitFor(() => a.elector.isLeader(), { what: "pod-a leads" });
    const b = candidate(server, clock, "pod-b");
    try {
      await settle([a, b]);
      await advance(clock, 6_000, [a, b]);
      assert(!b.elector.isLeader());
      assertEquals(b.elector.status().holder, "pod-a");
      // pod-a dies without a word (no release).
      a.stop.abort();
      await a.done;
      const lastRenew = Date.parse(String(leaseSpec(server).renewTime));
      while (!b.elector.isLeader()) {
        assert(clock.now() <= lastRenew + 15_000 + 2_000, "took over within a retry period");
        await advance(clock, 250, [b]);
      }
      const [[leading, at]] = b.changes;
      assert(leading);
      assert(at >= lastRenew + 15_000, `took over at +${at - lastRenew} ms`);
      const spec = leaseSpec(server);
      assertEquals(spec.holderIdentity, "pod-b");
      assertEquals(spec.leaseTransitions, 1);
      assertEquals(spec.acquireTime, microTime(at));
    } finally {
      b.stop.abort();
      await b.done;
    }
  });
});

Deno.test("a leader that loses the API server stops leading at the renew deadline, before its Lease expires", async () => {
  await withCluster(async (server, clock) => {
    const a = candidate(server, clock, "pod-a");
    try {
      await waitFor(() => a.elector.isLeader(), { what: "pod-a leads" });
      await advance(clock, 4_000, [a]);
      const lastRenew = Date.parse(String(leaseSpec(server).renewTime));
      assertEquals(lastRenew, T0 + 4_000);
      await server.faults.down();
      while (clock.now() < lastRenew + 15_000) {
        // The fence holds on the clock alone, whatever the renewal loop awaits.
        assertEquals(
          a.elector.isLeader(),
          clock.now() < lastRenew + 10_000,
          `at ${clock.now() - lastRenew}`,
        );
        await advance(clock, 250, [a], { mayHang: true });
      }
      assertEquals(a.changes.map(([leading]) => leading), [true, false]);
      const stoppedAt = a.changes[1][1];
      assert(stoppedAt <= lastRenew + 10_000, `stopped at +${stoppedAt - lastRenew} ms`);
      // Nothing was written after the API went away.
      assertEquals(leaseSpec(server).holderIdentity, "pod-a");
      assertEquals(Date.parse(String(leaseSpec(server).renewTime)), lastRenew);
    } finally {
      await server.faults.up();
      a.stop.abort();
      await a.done;
    }
  });
});

Deno.test("a leader that shuts down releases the Lease and the standby takes it at its next attempt", async () => {
  await withCluster(async (server, clock) => {
    const a = candidate(server, clock, "pod-a");
    await waitFor(() => a.elector.isLeader(), { what: "pod-a leads" });
    const b = candidate(server, clock, "pod-b");
    try {
      await settle([a, b]);
      a.stop.abort();
      await a.done;
      assertEquals(leaseSpec(server).holderIdentity, "");
      assertEquals(leaseSpec(server).leaseDurationSeconds, 1);
      await advance(clock, 2_000, [b]);
      assert(b.elector.isLeader());
      assertEquals(leaseSpec(server).holderIdentity, "pod-b");
      assertEquals(leaseSpec(server).leaseTransitions, 1);
    } finally {
      b.stop.abort();
      await b.done;
    }
  });
});

Deno.test("two candidates racing for a free Lease: exactly one wins", async () => {
  await withCluster(async (server, clock) => {
    const a = candidate(server, clock, "pod-a");
    const b = candidate(server, clock, "pod-b");
    try {
      await waitFor(() => a.elector.isLeader() || b.elector.isLeader(), { what: "a leader" });
      await advance(clock, 8_000, [a, b]);
      assertEquals([a, b].filter((c) => c.elector.isLeader()).length, 1);
      const leader = [a, b].find((c) => c.elector.isLeader())!;
      assertEquals(leaseSpec(server).holderIdentity, leader.elector.status().identity);
    } finally {
      for (const c of [a, b]) c.stop.abort();
      await Promise.all([a.done, b.done]);
    }
  });
});

Deno.test("a standby waits out the lease duration its holder wrote, counted from its own first read, not its own duration nor the Lease's renewTime", async () => {
  await withCluster(async (server, clock) => {
    // A holder running with longer durations (a rollout that shortens them),
    // whose renewTime is an hour old on this candidate's clock.
    server.create("leases", {
      metadata: { namespace: NS, name: LEASE },
      spec: {
        holderIdentity: "pod-old",
        leaseDurationSeconds: 30,
        acquireTime: microTime(T0 - 3_600_000),
        renewTime: microTime(T0 - 3_600_000),
        leaseTransitions: 4,
      },
    });
    const b = candidate(server, clock, "pod-b");
    try {
      await settle([b]);
      assertEquals(b.elector.status().holder, "pod-old");
      while (!b.elector.isLeader()) {
        assert(clock.now() <= T0 + 30_000 + 2_000, "took over within a retry period");
        await advance(clock, 250, [b]);
      }
      const [[, at]] = b.changes;
      assert(at >= T0 + 30_000, `took over at +${at - T0} ms, before the holder's 30 s`);
      assertEquals(leaseSpec(server).leaseTransitions, 5);
      assertEquals(leaseSpec(server).leaseDurationSeconds, 15);
    } finally {
      b.stop.abort();
      await b.done;
    }
  });
});

Deno.test("a leader that finds another holder in the Lease stops leading at once, not at its renew deadline", async () => {
  await withCluster(async (server, clock) => {
    const a = candidate(server, clock, "pod-a", { releaseOnCancel: false });
    try {
      await waitFor(() => a.elector.isLeader(), { what: "pod-a leads" });
      await advance(clock, 2_000, [a]);
      // Another replica took the Lease (as one would after a partition).
      const lease = server.get("leases", NS, LEASE)!;
      server.update("leases", {
        ...lease,
        spec: {
          ...lease.spec as Record<string, unknown>,
          holderIdentity: "pod-x",
          renewTime: microTime(clock.now()),
        },
      });
      const takenAt = clock.now();
      await advance(clock, 2_000, [a]);
      assert(!a.elector.isLeader(), "pod-a still leads");
      assertEquals(a.changes.map(([leading]) => leading), [true, false]);
      assert(a.changes[1][1] <= takenAt + 2_000, `stopped at +${a.changes[1][1] - takenAt} ms`);
      assertEquals(a.elector.status().holder, "pod-x");
      assertEquals(leaseSpec(server).holderIdentity, "pod-x");
    } finally {
      a.stop.abort();
      await a.done;
    }
  });
});

Deno.test("a leader whose Lease is deleted stops leading at once, then creates it again and leads", async () => {
  await withCluster(async (server, clock) => {
    const a = candidate(server, clock, "pod-a");
    try {
      await waitFor(() => a.elector.isLeader(), { what: "pod-a leads" });
      await advance(clock, 2_000, [a]);
      server.delete("leases", NS, LEASE);
      const deletedAt = clock.now();
      await advance(clock, 2_000, [a]);
      assertEquals(a.changes.map(([leading]) => leading).slice(0, 2), [true, false]);
      assert(a.changes[1][1] <= deletedAt + 2_000, `stopped at +${a.changes[1][1] - deletedAt} ms`);
      await advance(clock, 4_000, [a]);
      assert(a.elector.isLeader(), "pod-a leads again");
      assertEquals(leaseSpec(server).holderIdentity, "pod-a");
    } finally {
      a.stop.abort();
      await a.done;
    }
  });
});

Deno.test("a renewal refused for a conflict reads the Lease and renews in the same attempt, without waiting a retry period", async () => {
  await withCluster(async (server, clock) => {
    const a = candidate(server, clock, "pod-a");
    try {
      await waitFor(() => a.elector.isLeader(), { what: "pod-a leads" });
      // Someone edits the Lease's metadata just before the renewal lands.
      server.faults.beforeNext({ verb: "update", resource: "leases" }, () => {
        server.patch("leases", NS, LEASE, { metadata: { labels: { edited: "yes" } } });
      });
      await advance(clock, 2_000, [a]);
      assert(a.elector.isLeader());
      assertEquals(leaseSpec(server).renewTime, microTime(T0 + 2_000));
      assertEquals(
        server.requests.counts()["update leases"],
        2,
        "the refused renewal and its retry",
      );
      assertEquals(server.get("leases", NS, LEASE)!.metadata.labels, { edited: "yes" });
    } finally {
      a.stop.abort();
      await a.done;
    }
  });
});

Deno.test("a leader that shuts down stops leading before its release reaches the API server", async () => {
  await withCluster(async (server, clock) => {
    const a = candidate(server, clock, "pod-a");
    await waitFor(() => a.elector.isLeader(), { what: "pod-a leads" });
    let leaderAtRelease: boolean | undefined;
    server.faults.beforeNext({ verb: "update", resource: "leases" }, () => {
      leaderAtRelease = a.elector.isLeader();
    });
    a.stop.abort();
    await a.done;
    assertEquals(leaseSpec(server).holderIdentity, "");
    assertEquals(leaderAtRelease, false);
  });
});

Deno.test("durations that break client-go's constraints are refused", () => {
  const base = {
    kubeConfig: undefined as never,
    namespace: NS,
    name: LEASE,
    identity: "x",
    log: nullLogger,
  };
  assertThrows(
    () => new LeaderElector({ ...base, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 }),
    RangeError,
    "must be greater than the renew deadline",
  );
  assertThrows(
    () => new LeaderElector({ ...base, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }),
    RangeError,
    "1.2 × the retry period",
  );
  // The bound itself is refused: the deadline must be greater.
  assertThrows(
    () => new LeaderElector({ ...base, renewDeadlineMs: 2_400, retryPeriodMs: 2_000 }),
    RangeError,
    "1.2 × the retry period",
  );
});

Deno.test("a Lease request that hangs is given up at the renew deadline, not the API client's 30 s", async () => {
  await withCluster(async (server, clock) => {
    server.faults.setLatency(3_000);
    const log = recordingLogger();
    const started = performance.now();
    const a = candidate(server, clock, "pod-a", {
      leaseDurationMs: 1_000,
      renewDeadlineMs: 500,
      retryPeriodMs: 200,
      log,
    });
    try {
      await waitFor(() => a.elector.status().attempts === 1, {
        what: "the first attempt given up",
        timeoutMs: 2_500,
      });
      assert(performance.now() - started < 2_500, "given up before the request could answer");
      assert(!a.elector.isLeader());
      assert(
        log.lines.some((l) => /timed out after 500 ms/.test(String(l.error))),
        JSON.stringify(log.lines),
      );
    } finally {
      server.faults.setLatency(0);
      a.stop.abort();
      await a.done;
    }
  });
});
