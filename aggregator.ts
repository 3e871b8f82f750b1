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
import { ListParser } from "./sources/list_parser.ts";
import { buildSources, type DaemonDeps } from "./daemon.ts";
import { type ElectionStatus, LeaderElector } from "./election/leader_elector.ts";
import { LeaderEventSink } from "./election/leader_event_sink.ts";
import { DesiredImages, desiredImagesOptions } from "./images/desired_images.ts";
import { EventRecorder } from "./kube/events.ts";
import { Publisher, type PublisherStatus } from "./publication/publisher.ts";
import type { Source } from "./sources/source.ts";
import { TagLedger } from "./ledger/tag_ledger.ts";
import { LedgerFeed } from "./ledger/ledger_feed.ts";
import type { WatchStatus } from "./kube/reflector.ts";
import { realClock } from "./time/clock.ts";

/** The running parts of an aggregator. */
export interface AggregatorParts {
  readonly desired: DesiredImages;
  readonly sources: readonly Source[];
  readonly election: { status(): ElectionStatus };
  readonly publisher: { status(): PublisherStatus };
  readonly events: EventRecorder;
  /** The tag ledger: per tag, its canary and the digest last seen (#16). */
  readonly ledger: TagLedger;
  /** The ledger's watches (Nodes, pull pods). */
  readonly watches: readonly { status(): WatchStatus }[];
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
    // Undefined unless a test drives time: the election then decides on
    // monotonic time, which a step of the wall clock does not move.
    clock: deps.clock,
  });
  const events = new LeaderEventSink(recorder, () => election.isLeader(), () => recorder.flush());
  // Listed objects are parsed on a second thread: the start's lists are
  // the aggregator's largest work (sources/list_parser.ts).
  const listParser = new ListParser({ log });
  const sources = await buildSources(config, { ...deps, log }, desired, events, listParser);
  const synced = Promise.all(sources.map((s) => s.synced)).then(() => {});
  let sourcesSynced = false;
  synced.then(() => sourcesSynced = true);
  // The tag ledger (#16): one canary per tag checks the registry each period;
  // the others skip a tag whose digest they already hold.
  const ledger = new TagLedger({ now: () => clock.now() });
  const feed = new LedgerFeed({ kubeConfig, namespace, ledger, log, clock });
  // By the change, not the whole set: a relist adds images a few at a time.
  desired.subscribe((change) => ledger.track(change));
  const publisher = new Publisher({
    kubeConfig,
    namespace,
    desired,
    annotate: (image) => ledger.annotate(image),
    isLeader: () => election.isLeader(),
    // Nodes listed too: a set published before would name no canaries.
    sourcesSynced: Promise.all([synced, feed.synced]).then(() => {}),
    log,
    clock,
    minIntervalMs: config.publishIntervalMs,
    // A source it may not read may still ask for images: drop none of them.
    holdRemovals: () => {
      for (const source of sources) {
        const status = source.status();
        if (status.forbidden) return `${source.name}: ${status.reason ?? "forbidden"}`;
      }
      return undefined;
    },
  });
  ledger.subscribe(() => publisher.poke());
  election.onChange((leading) => {
    if (!leading) return;
    void events.flush();
    publisher.poke();
  });
  deps.onAggregatorStarted?.({
    desired,
    sources,
    election,
    publisher,
    events: recorder,
    ledger,
    watches: feed.watches,
    ready: () => sourcesSynced,
  });
  log.info("Starting image-cache-daemon", {
    version: VERSION,
    role: "aggregator",
    lease: `${namespace}/${config.leaderElectLeaseName}`,
    sources: sources.map((s) => s.name),
  });
  // The election stops (and a leader releases the Lease) only once the
  // publisher has: a write in flight at the signal is not left to land after
  // a standby has taken over.
  const electionStop = new AbortController();
  try {
    await Promise.all([
      ...sources.map((s) => s.run(signal)),
      publisher.run(signal).finally(() => electionStop.abort()),
      feed.run(signal),
      election.run(electionStop.signal),
    ]);
  } finally {
    electionStop.abort();
    listParser.close();
    await recorder.flush();
  }
  log.info("Stopped", { role: "aggregator" });
}
