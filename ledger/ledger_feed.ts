/**
 * What feeds the aggregator's tag ledger from the cluster: a watch of the
 * Nodes (the ready ones are the canary candidates) and a watch of the pull
 * pods in the aggregator's namespace (a finished pull pod's
 * `containerStatuses[].imageID` is the digest its tag resolved to; a pull
 * error is a failed check), and a watch of the `TagChecked` Events in that
 * namespace (what canaries pulling through CRI report, see
 * tag_check_event.ts). Read only: list and watch.
 *
 * @module
 */
import type { KubeConfig, KubernetesObject, V1Node, V1Pod } from "@kubernetes/client-node";
import type { Clock } from "../time/clock.ts";
import type { Logger } from "../log/logger.ts";
import { allNodesCollection, eventCollection, podCollection } from "../kube/listers.ts";
import { Reflector, type WatchStatus } from "../kube/reflector.ts";
import { tryNormalizeReference } from "../images/reference.ts";
import { allWardenPodsSelector, IMAGE_ANNOTATION } from "../puller/warden_pod.ts";
import { podOutcome, podViewOf } from "../puller/warden_strategy.ts";
import { digestOfImageId, isLedgerTag, type TagLedger } from "./tag_ledger.ts";
import { readTagCheck, TAG_CHECKED_SELECTOR, type TagCheck } from "./tag_check_event.ts";

/** Options for {@linkcode LedgerFeed}. */
export interface LedgerFeedOptions {
  kubeConfig: KubeConfig;
  /** The aggregator's namespace, where the node daemons create pull pods. */
  namespace: string;
  ledger: TagLedger;
  log: Logger;
  clock?: Clock;
}

/** What is kept of a pull pod: the tag, its node, and what it revealed. */
interface PullView {
  readonly ref?: string;
  readonly node?: string;
  readonly outcome?: "pulled" | "failed";
  readonly digest?: string;
}

/** Whether a Node can be a canary: Ready and schedulable. Pure. */
export function isCanaryCandidate(obj: KubernetesObject): boolean {
  const node = obj as V1Node;
  if (node.spec?.unschedulable) return false;
  return node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

/** What a pull pod says about its tag. Pure. */
export function pullViewOf(obj: KubernetesObject): PullView {
  const pod = obj as V1Pod;
  const normalized = tryNormalizeReference(pod.metadata?.annotations?.[IMAGE_ANNOTATION]);
  const node = pod.spec?.nodeName;
  if (!normalized.ok || !isLedgerTag(normalized.ref) || !node) return {};
  const ref = normalized.ref;
  const outcome = podOutcome(ref, podViewOf(obj));
  if (outcome === undefined) return { ref, node };
  if (outcome instanceof Error) return { ref, node, outcome: "failed" };
  return { ref, node, outcome: "pulled", digest: digestOfImageId(outcome.digest) };
}

/** Keeps the ledger's nodes and digests in step with the cluster. */
export class LedgerFeed {
  readonly #ledger: TagLedger;
  readonly #log: Logger;
  readonly #nodes: Reflector<boolean>;
  readonly #pods: Reflector<PullView>;
  readonly #checks: Reflector<TagCheck | undefined>;
  /** The count already fed per tag-check Event, so a relist or a repeat counts once. */
  readonly #checksFed = new Map<string, number>();
  readonly #ready = new Map<string, boolean>();
  /** The outcome already fed per pull pod, so a pod's later events do not count twice. */
  readonly #fed = new Map<string, string>();
  readonly synced: Promise<unknown>;

  constructor(options: LedgerFeedOptions) {
    const { kubeConfig, namespace, log, clock, ledger } = options;
    this.#ledger = ledger;
    this.#log = log;
    const nodes = allNodesCollection(kubeConfig);
    this.#nodes = new Reflector<boolean>({
      name: "ledger-nodes",
      list: nodes.list,
      watch: nodes.watch,
      heartbeat: nodes.heartbeat,
      log,
      clock,
      handler: {
        transform: isCanaryCandidate,
        replace: (items) => {
          this.#ready.clear();
          for (const [key, ready] of items) this.#ready.set(key, ready);
          this.#setNodes();
        },
        upsert: (key, ready) => {
          if (this.#ready.get(key) === ready) return;
          this.#ready.set(key, ready);
          this.#setNodes();
        },
        remove: (key) => {
          if (this.#ready.delete(key)) this.#setNodes();
        },
      },
    });
    const pods = podCollection(kubeConfig, { namespace, labelSelector: allWardenPodsSelector() });
    this.#pods = new Reflector<PullView>({
      name: "ledger-pull-pods",
      list: pods.list,
      watch: pods.watch,
      heartbeat: pods.heartbeat,
      log,
      clock,
      handler: {
        transform: pullViewOf,
        replace: (items) => {
          for (const key of [...this.#fed.keys()]) if (!items.has(key)) this.#fed.delete(key);
          for (const [key, view] of items) this.#feed(key, view);
        },
        upsert: (key, view) => this.#feed(key, view),
        remove: (key, last) => this.#ended(key, last?.()),
      },
    });
    const checks = eventCollection(kubeConfig, { namespace, fieldSelector: TAG_CHECKED_SELECTOR });
    this.#checks = new Reflector<TagCheck | undefined>({
      name: "ledger-tag-checks",
      list: checks.list,
      watch: checks.watch,
      heartbeat: checks.heartbeat,
      log,
      clock,
      handler: {
        transform: readTagCheck,
        replace: (items) => {
          for (const key of [...this.#checksFed.keys()]) {
            if (!items.has(key)) this.#checksFed.delete(key);
          }
          // Oldest first: the newest check of a tag is the one that stands.
          const sorted = [...items].filter((e): e is [string, TagCheck] => e[1] !== undefined)
            .sort((a, b) => a[1].at - b[1].at);
          for (const [key, check] of sorted) this.#check(key, check);
        },
        upsert: (key, check) => {
          if (check !== undefined) this.#check(key, check);
        },
        remove: (key) => this.#checksFed.delete(key),
      },
    });
    this.synced = Promise.all([this.#nodes.synced, this.#pods.synced, this.#checks.synced]);
  }

  #setNodes(): void {
    const ready: string[] = [];
    for (const [name, ok] of this.#ready) if (ok) ready.push(name);
    this.#ledger.setNodes(ready);
  }

  #feed(key: string, view: PullView): void {
    const { ref, node, outcome } = view;
    if (ref === undefined || node === undefined || outcome === undefined) return;
    const fed = `${outcome} ${view.digest ?? ""}`;
    if (this.#fed.get(key) === fed) return;
    this.#fed.set(key, fed);
    if (outcome === "pulled") this.#ledger.report(ref, node, view.digest);
    else this.#ledger.failure(ref, node);
  }

  /** A canary's tag check, reported in an Event: each new count is one more check. */
  #check(key: string, check: TagCheck): void {
    if ((this.#checksFed.get(key) ?? 0) >= check.count) return;
    this.#checksFed.set(key, check.count);
    if (check.digest !== undefined) this.#ledger.report(check.ref, check.node, check.digest);
    else this.#ledger.failure(check.ref, check.node);
  }

  /**
   * A pull pod was deleted. Its final state may carry an outcome not seen
   * yet. Deleted without any, a canary's pod ran out of its node's pull
   * timeout (or its daemon stopped): the check failed, as far as the ledger
   * can tell, so the tag gets another canary rather than the same node again
   * next period. A relist that no longer finds a pod counts nothing: how it
   * ended is unknown.
   */
  #ended(key: string, last: PullView | undefined): void {
    if (last !== undefined) this.#feed(key, last);
    const fed = this.#fed.delete(key);
    const { ref, node } = last ?? {};
    if (fed || ref === undefined || node === undefined) return;
    const entry = this.#ledger.entry(ref);
    if (entry?.canary !== node) return;
    this.#log.info("A canary's pull pod was deleted before it finished; choosing another canary", {
      image: ref,
      node,
    });
    this.#ledger.failure(ref, node);
  }

  /** The two watches, for health and status. */
  get watches(): readonly { status(): WatchStatus }[] {
    const of = (r: Reflector<unknown>, name: string, objects: () => number) => ({
      status: (): WatchStatus => {
        const s = r.status();
        return {
          name,
          synced: s.synced,
          available: s.available,
          reason: s.reason,
          objects: objects(),
          errors: 0,
          restarts: s.restarts,
          lastActivity: s.lastActivity,
        };
      },
    });
    return [
      of(this.#nodes, "ledger-nodes", () => this.#ready.size),
      of(this.#pods, "ledger-pull-pods", () => this.#fed.size),
      of(this.#checks, "ledger-tag-checks", () => this.#checksFed.size),
    ];
  }

  /** Watches until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([
      this.#nodes.run(signal),
      this.#pods.run(signal),
      this.#checks.run(signal),
    ]);
  }
}
