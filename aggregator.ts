/**
 * The aggregator's wiring (`--role=aggregator`): sources → dedupe map →
 * publication, with one leader among the replicas. Every replica watches the
 * sources (a standby's caches stay warm, so a failover republishes within a
 * lease duration); only the leader writes the published set and reports bad
 * objects.
 *
 * @module
 */
import { type Config, requireAggregatorIdentity } from "./config/config.ts";
import { VERSION } from "./config/version.ts";
import { buildSources, type DaemonDeps } from "./daemon.ts";
import { type ElectionStatus, LeaderElector } from "./election/leader_elector.ts";
import { LeaderEventSink } from "./election/leader_event_sink.ts";
import { DesiredImages, desiredImagesOptions } from "./images/desired_images.ts";
import { EventRecorder } from "./kube/events.ts";
import { Publisher, type PublisherStatus } from "./publication/publisher.ts";
import type { Source } from "./sources/source.ts";
import { realClock } from "./time/clock.ts";

/** The running parts of an aggregator. */
export interface AggregatorParts {
  readonly desired: DesiredImages;
  readonly sources: readonly Source[];
  readonly election: { status(): ElectionStatus };
  readonly publisher: { status(): PublisherStatus };
  readonly events: EventRecorder;
  /** True once every source has synced (a standby is ready too: it is warm). */
  ready(): boolean;
}

/**
 * Runs an aggregator replica until `signal` aborts: campaigns for the Lease,
 * watches the sources, and while leading keeps the published set equal to the
 * desired images. On abort a leader releases the Lease.
 */
export async function runAggregator(
  config: Config,
  deps: DaemonDeps,
  signal: AbortSignal,
): Promise<void> {
  const { kubeConfig } = deps;
  const clock = deps.clock ?? realClock;
  const { name: identity, namespace } = requireAggregatorIdentity(config);
  const log = deps.log.with({ pod: identity });
  const desired = new DesiredImages(desiredImagesOptions(config, log));
  const recorder = new EventRecorder({ kubeConfig, host: identity, log, clock });
  const election = new LeaderElector({
    kubeConfig,
    namespace,
    name: config.leaderElectLeaseName,
    identity,
    leaseDurationMs: config.leaderElectLeaseDurationMs,
    renewDeadlineMs: config.leaderElectRenewDeadlineMs,
    retryPeriodMs: config.leaderElectRetryPeriodMs,
    log,
    clock,
  });
  const events = new LeaderEventSink(recorder, () => election.isLeader());
  const sources = await buildSources(config, { ...deps, log }, desired, events);
  const synced = Promise.all(sources.map((s) => s.synced)).then(() => {});
  let sourcesSynced = false;
  synced.then(() => sourcesSynced = true);
  const publisher = new Publisher({
    kubeConfig,
    namespace,
    desired,
    isLeader: () => election.isLeader(),
    sourcesSynced: synced,
    log,
    clock,
    minIntervalMs: config.publishIntervalMs,
  });
  election.onChange((leading) => {
    if (!leading) return;
    events.flush();
    publisher.poke();
  });
  deps.onAggregatorStarted?.({
    desired,
    sources,
    election,
    publisher,
    events: recorder,
    ready: () => sourcesSynced,
  });
  log.info("Starting image-cache-daemon", {
    version: VERSION,
    role: "aggregator",
    lease: `${namespace}/${config.leaderElectLeaseName}`,
    sources: sources.map((s) => s.name),
  });
  try {
    await Promise.all([
      ...sources.map((s) => s.run(signal)),
      publisher.run(signal),
      election.run(signal),
    ]);
  } finally {
    await recorder.flush();
  }
  log.info("Stopped", { role: "aggregator" });
}
