/**
 * Warm before work: keeps the `ImagesPrePulled` condition on the daemon's own
 * Node, and lifts the `--startup-taint` once the node is warm or
 * `--warm-timeout` has passed since the node registered.
 *
 * Level-triggered: each tick recomputes the state from the puller and the
 * watched Node, so a restart mid-warm-up continues where it stood (the
 * timeout counts from the Node's `creationTimestamp`, or the taint's
 * `timeAdded`, never from the process start).
 *
 * @module
 */
import {
  CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Taint,
} from "@kubernetes/client-node";
import type { StartupTaint } from "../config/config.ts";
import { formatDuration } from "../config/duration.ts";
import type { EventSink } from "../kube/events.ts";
import { apiMessage, apiStatus } from "../kube/client.ts";
import type { Logger } from "../log/logger.ts";
import type { ImageStatus } from "../puller/node_puller.ts";
import type { NodeMeta } from "../puller/node_images.ts";
import { type Clock, realClock, untilAborted, waitAtMost } from "../time/clock.ts";
import { CONDITION_TYPE, type WarmState, warmState } from "./warm_state.ts";

/** The state before the desired images are known: not warm, and saying why. */
const UNKNOWN_STATE: WarmState = {
  warm: false,
  desired: 0,
  present: 0,
  missing: 0,
  failing: [],
  permanent: [],
  condition: {
    status: "False",
    reason: "DesiredImagesUnknown",
    message: "the desired images are not known yet: the daemon waits for its sources",
  },
};

/** Options for {@linkcode WarmUp}. */
export interface WarmUpOptions {
  kubeConfig: KubeConfig;
  node: string;
  log: Logger;
  clock?: Clock;
  /** The taint to lift (`--startup-taint`); without it only the condition is kept. */
  taint?: StartupTaint;
  /** `--warm-timeout`: the taint goes this long after registration even if images are missing. */
  timeoutMs: number;
  /** The puller's view of the desired images. */
  images(): readonly ImageStatus[];
  /**
   * Whether the desired images are known (every source, or the published
   * set, synced and the puller running). Until then the node is not warm,
   * whatever {@linkcode images} says, and only `--warm-timeout` opens it: a
   * node whose daemon never learns its images (no published set yet, a
   * source that never syncs) is still opened in time. @default {always}
   */
  known?(): boolean;
  /** The watched Node (undefined until seen). */
  nodeMeta(): NodeMeta | undefined;
  /** Raises the puller's concurrency while warming, and sets it back. */
  setConcurrency?(limit: number): void;
  /** `--warm-max-concurrent-pulls` and `--max-concurrent-pulls`. */
  warmConcurrency?: number;
  normalConcurrency?: number;
  events?: EventSink;
  /** Observes the time to open, in seconds, and whether it was warm or timed out. */
  onWarm?(seconds: number, outcome: "warm" | "timeout"): void;
  /** Calls `listener` when the desired images change (so a new image turns the condition False at once). */
  subscribe?(listener: () => void): () => void;
  /** How often the state is recomputed. @default {1000} */
  tickMs?: number;
}

/** What {@linkcode WarmUp.status} reports (in `/status` and `/readyz` detail). */
export interface WarmUpStatus {
  warm: boolean;
  condition: { status: string; reason: string; message: string };
  taint?: string;
  /** "waiting": still on the node; "lifted": this process removed it; "absent": not on the node. */
  taintState?: "waiting" | "lifted" | "absent";
  /** When the taint goes at the latest (epoch ms), while it waits. */
  deadline?: number;
  /** Time from registration to open, once opened by this process. */
  warmAfterMs?: number;
}

/** Tries at a conflicting taint edit before waiting for the next tick. */
const PATCH_ATTEMPTS = 5;

function taintText(taint: StartupTaint): string {
  return taint.effect ? `${taint.key}:${taint.effect}` : taint.key;
}

function matches(t: V1Taint, taint: StartupTaint): boolean {
  return t.key === taint.key && (taint.effect === undefined || t.effect === taint.effect);
}

/**
 * A taint as the API server sends it: the client parses `timeAdded` into a
 * Date, whose JSON has milliseconds the server's RFC 3339 form lacks.
 */
function wireTaint(t: V1Taint): Record<string, unknown> {
  const out: Record<string, unknown> = { key: t.key, effect: t.effect };
  if (t.value !== undefined) out.value = t.value;
  if (t.timeAdded !== undefined) {
    out.timeAdded = new Date(t.timeAdded).toISOString().replace(/\.\d{3}Z$/, "Z");
  }
  return out;
}

/** Least time between two writes of the condition that change only its message (the counts). */
export const PROGRESS_WRITE_MS = 10_000;

/** The condition and startup taint of one node. */
export class WarmUp {
  readonly #o: WarmUpOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #api: CoreV1Api;
  #state?: WarmState;
  /** The condition last written (or found on the Node). */
  #written?: string;
  /** Its status and reason, and when it was written (clock ms). */
  #writtenStatus?: string;
  #writtenAt = -Infinity;
  #lifted = false;
  #opened = false;
  #warmAfterMs?: number;
  #wakeUp?: () => void;
  #poked = false;
  /** The condition's status on the Node when this process first saw it. */
  #foundStatus?: string;

  constructor(options: WarmUpOptions) {
    this.#o = options;
    this.#clock = options.clock ?? realClock;
    this.#log = options.log.with({ component: "warm-up" });
    this.#api = options.kubeConfig.makeApiClient(CoreV1Api);
  }

  /** Recomputes soon (the puller's hooks and desired-image changes call it). */
  poke(): void {
    this.#poked = true;
    this.#wakeUp?.();
  }

  /** Runs until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    if (this.#o.warmConcurrency !== undefined) this.#o.setConcurrency?.(this.#o.warmConcurrency);
    const unsubscribe = this.#o.subscribe?.(() => this.poke());
    const aborted = untilAborted(signal);
    try {
      while (!signal.aborted) {
        this.#poked = false;
        try {
          await this.tick();
        } catch (error) {
          this.#log.warn("Warm-up step failed; will retry", { error: apiMessage(error) });
        }
        if (this.#poked) continue;
        const woken = new Promise<void>((resolve) => this.#wakeUp = resolve);
        await waitAtMost(this.#clock, this.#o.tickMs ?? 1_000, woken, aborted);
        this.#wakeUp = undefined;
      }
    } finally {
      unsubscribe?.();
    }
  }

  /** One reconcile: condition, then taint. Public for tests on a fake clock. */
  async tick(): Promise<void> {
    const meta = this.#o.nodeMeta();
    if (meta === undefined) return;
    const known = this.#o.known?.() !== false;
    const state = known ? warmState(this.#o.images()) : UNKNOWN_STATE;
    this.#state = state;
    this.#foundStatus ??= meta.conditions.find((c) => c.type === CONDITION_TYPE)?.status ??
      "none";
    // Warm-up ends when the node is warm or has been opened by the timeout.
    if ((state.warm || this.#opened) && this.#o.warmConcurrency !== undefined) {
      this.#o.setConcurrency?.(this.#o.normalConcurrency ?? 1);
    }
    // Not before the images are known: a restarted daemon would turn a warm
    // node's condition False for as long as its sources take to sync.
    if (known) await this.#writeCondition(meta, state);
    const { taint } = this.#o;
    if (taint === undefined) {
      if (state.warm) this.#open(meta, state);
      return;
    }
    const present = meta.taints.find((t) => matches(t, taint));
    if (present === undefined) {
      if (state.warm) this.#open(meta, state);
      return;
    }
    const deadline = this.#deadline(meta, present);
    const now = this.#clock.now();
    if (!state.warm && (deadline === undefined || now < deadline)) return;
    if (await this.#liftTaint(taint)) {
      this.#lifted = true;
      if (!state.warm) {
        this.#log.warn("Warm-up timed out; startup taint removed with images missing", {
          taint: taintText(taint),
          reason: state.condition.reason,
          missing: state.missing,
          failing: state.failing,
        });
      }
      this.#open(meta, state);
    }
  }

  /** Where warm-up stands. */
  status(): WarmUpStatus {
    const state = this.#state;
    const meta = this.#o.nodeMeta();
    const { taint } = this.#o;
    const out: WarmUpStatus = {
      warm: state?.warm ?? false,
      condition: state?.condition ??
        { status: "Unknown", reason: "Starting", message: "not yet computed" },
    };
    if (taint !== undefined) {
      out.taint = taintText(taint);
      const present = meta?.taints.find((t) => matches(t, taint));
      out.taintState = present ? "waiting" : this.#lifted ? "lifted" : "absent";
      if (present && meta) out.deadline = this.#deadline(meta, present);
    }
    if (this.#warmAfterMs !== undefined) out.warmAfterMs = this.#warmAfterMs;
    return out;
  }

  #deadline(meta: NodeMeta, taint: V1Taint): number | undefined {
    const added = taint.timeAdded === undefined ? undefined : new Date(taint.timeAdded).getTime();
    const since = added ?? meta.created;
    return since === undefined ? undefined : since + this.#o.timeoutMs;
  }

  /** The first time this process sees the node open: Event and metric. */
  #open(meta: NodeMeta, state: WarmState): void {
    if (this.#opened) return;
    this.#opened = true;
    // A node a restarted daemon finds warm (and without the taint) was opened
    // before: no second Event, no second observation.
    if (!this.#lifted && this.#foundStatus === "True") return;
    const afterMs = meta.created === undefined ? undefined : this.#clock.now() - meta.created;
    this.#warmAfterMs = afterMs;
    if (afterMs !== undefined) this.#o.onWarm?.(afterMs / 1000, state.warm ? "warm" : "timeout");
    const failed = state.failing.length > 0 ? `, ${state.failing.length} failed` : "";
    const how = state.warm ? "warm" : "open after --warm-timeout";
    const message = `Node ${how} ${
      afterMs === undefined ? "" : `${formatDuration(afterMs)} after registration`
    }: ${state.present} of ${state.desired} images present${failed}${
      state.failing.length > 0 ? ` (${state.failing.slice(0, 5).join(", ")})` : ""
    }`;
    this.#log.info("Node open for work", {
      warmAfter: afterMs === undefined ? undefined : formatDuration(afterMs),
      present: state.present,
      desired: state.desired,
      failing: state.failing,
      taintLifted: this.#lifted,
    });
    this.#o.events?.emit(
      "Normal",
      { apiVersion: "v1", kind: "Node", name: this.#o.node },
      state.warm ? "NodeWarm" : "WarmUpTimedOut",
      message,
    );
  }

  async #writeCondition(meta: NodeMeta, state: WarmState): Promise<void> {
    const { status, reason, message } = state.condition;
    const key = `${status}\u0000${reason}\u0000${message}`;
    const onNode = meta.conditions.find((c) => c.type === CONDITION_TYPE);
    if (this.#written === undefined && onNode !== undefined) {
      const found = `${onNode.status}\u0000${onNode.reason}\u0000${onNode.message}`;
      if (found === key) this.#written = key;
    }
    if (this.#written === key) return;
    // A change of the counts alone (the message) is written at most every
    // PROGRESS_WRITE_MS: a node pulling 50 images patches its status a few
    // times, not 50. A change of status or reason goes at once; the tick
    // writes the latest counts once the interval has passed.
    if (
      this.#writtenStatus === `${status}\u0000${reason}` &&
      this.#clock.now() - this.#writtenAt < PROGRESS_WRITE_MS
    ) return;
    // RFC 3339 in whole seconds, as the API server writes times.
    const now = new Date(this.#clock.now()).toISOString().replace(/\.\d{3}Z$/, "Z");
    // Strategic merge by `type` (as node-problem-detector does): the
    // kubelet's conditions are left as they are.
    const transition = onNode?.status === status ? onNode.lastTransitionTime : now;
    await this.#api.patchNodeStatus({
      name: this.#o.node,
      body: {
        status: {
          conditions: [{
            type: CONDITION_TYPE,
            status,
            reason,
            message,
            lastHeartbeatTime: now,
            lastTransitionTime: transition ?? now,
          }],
        },
      },
    }, setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch));
    if (onNode?.status !== status) {
      this.#log.info("Node condition changed", { type: CONDITION_TYPE, status, reason, message });
    }
    this.#written = key;
    this.#writtenStatus = `${status}\u0000${reason}`;
    this.#writtenAt = this.#clock.now();
  }

  /**
   * Removes the startup taint with a JSON patch whose `test` holds the taints
   * as read: a concurrent edit of any taint fails the test (422) and the
   * removal starts over from a fresh read. Returns whether it is gone.
   */
  async #liftTaint(taint: StartupTaint): Promise<boolean> {
    for (let attempt = 1; attempt <= PATCH_ATTEMPTS; attempt++) {
      const node = await this.#api.readNode({ name: this.#o.node });
      const taints = node.spec?.taints ?? [];
      const index = taints.findIndex((t) => matches(t, taint));
      if (index < 0) return true;
      try {
        await this.#api.patchNode({
          name: this.#o.node,
          body: [
            { op: "test", path: "/spec/taints", value: taints.map(wireTaint) },
            { op: "remove", path: `/spec/taints/${index}` },
          ],
        }, setHeaderOptions("Content-Type", PatchStrategy.JsonPatch));
        this.#log.info("Startup taint removed", { taint: taintText(taint) });
        return true;
      } catch (error) {
        const code = apiStatus(error);
        if (code !== 422 && code !== 409) throw error;
        this.#log.debug("Taints changed while removing the startup taint; reading again", {
          attempt,
        });
      }
    }
    return false;
  }
}
