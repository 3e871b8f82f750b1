/**
 * A node's view of whether an aggregator is alive, from the renewals of its
 * Lease, against the fake API server on fake time.
 */
import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { type FakeApiServer, startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { FakeClock } from "../time/clock.ts";
import { waitFor } from "../testing/wait.ts";
import { recordingLogger } from "../log/logger.ts";
import { LeaseLiveness } from "./lease_liveness.ts";
import { microTime } from "./leader_elector.ts";

const NS = "image-cache-daemon";
const LEASE = "image-cache-daemon-aggregator";
const T0 = Date.parse("2026-11-29T12:00:00Z");

async function withLiveness(
  fn: (server: FakeApiServer, clock: FakeClock, liveness: LeaseLiveness) => Promise<void>,
) {
  const server = await startFakeApiServer({ namespaces: [NS] });
  const clock = new FakeClock(T0);
  const liveness = new LeaseLiveness({
    kubeConfig: server.kubeConfig(),
    namespace: NS,
    name: LEASE,
    log: recordingLogger(),
    clock,
  });
  try {
    await fn(server, clock, liveness);
  } finally {
    await server.close();
  }
}

function renew(server: FakeApiServer, at: number): void {
  const spec = {
    holderIdentity: "aggregator-0",
    leaseDurationSeconds: 15,
    renewTime: microTime(at),
  };
  const lease = server.get("leases", NS, LEASE);
  if (lease === undefined) {
    server.create("leases", { metadata: { namespace: NS, name: LEASE }, spec });
  } else server.update("leases", { ...lease, spec });
}

Deno.test("an aggregator counts as alive while its Lease was renewed within the last minute, and not once the renewals stop", async () => {
  await withLiveness(async (server, clock, liveness) => {
    renew(server, T0 - 10_000);
    assertEquals(liveness.alive(), false, "not known before the first read");
    await liveness.check();
    assertEquals(liveness.alive(), true);
    await clock.advance(50_000);
    await liveness.check();
    assertEquals(liveness.alive(), true, "renewed 60 s ago");
    await clock.advance(1_000);
    await liveness.check();
    assertEquals(liveness.alive(), false);
    assertMatch(liveness.status().reason!, /last renewed 61 s ago: no aggregator is running/);
    renew(server, clock.now());
    await liveness.check();
    assertEquals(liveness.alive(), true, "back once renewed");
  });
});

Deno.test("no Lease at all: no aggregator counts as alive, and the status says why", async () => {
  await withLiveness(async (_server, _clock, liveness) => {
    await liveness.check();
    assertEquals(liveness.alive(), false);
    assertMatch(liveness.status().reason!, /does not exist: no aggregator has run/);
  });
});

Deno.test("the Lease is read at most once a minute however often liveness is asked", async () => {
  await withLiveness(async (server, clock, liveness) => {
    renew(server, T0);
    await liveness.check();
    for (let i = 0; i < 100; i++) liveness.alive();
    await clock.advance(59_000);
    for (let i = 0; i < 100; i++) liveness.alive();
    assertEquals(server.requests.counts()["get leases"], 1);
    await clock.advance(1_000);
    // Due: asking starts the read, in the background.
    liveness.alive();
    await waitFor(() => server.requests.counts()["get leases"] === 2, { what: "the second read" });
    await waitFor(() => liveness.status().checkedAt === clock.now(), { what: "its answer" });
  });
});

Deno.test("a read of the Lease that hangs is given up within its bound: the verdict is not pinned by it", async () => {
  const server = await startFakeApiServer({ namespaces: [NS] });
  try {
    renew(server, Date.now());
    server.faults.setLatency(3_000);
    const liveness = new LeaseLiveness({
      kubeConfig: server.kubeConfig(),
      namespace: NS,
      name: LEASE,
      log: recordingLogger(),
      readTimeoutMs: 200,
    });
    const started = performance.now();
    await liveness.check();
    assert(performance.now() - started < 2_000, "waited for the hung read");
    assertEquals(liveness.alive(), false);
    assertMatch(liveness.status().reason!, /cannot be read: .*timed out after 200 ms/);
  } finally {
    server.faults.setLatency(0);
    await server.close();
  }
});
