/**
 * The tag ledger's report channel for the CRI strategy (#16): a canary that
 * pulls through CRI creates no pull pod, so it tells the leader what it
 * found in a Kubernetes Event on its own DaemonSet pod, in the daemon's
 * namespace: reason {@linkcode TAG_CHECKED_REASON}, `source.host` its node,
 * and a message that names the tag and either the digest it resolved to or
 * why the check failed. The node daemon already records Events on its own
 * pod (`PullFailed`), so the channel needs no new write permission; the
 * aggregator lists and watches Events of this reason in its own namespace.
 *
 * Bounded: only a tag's canary reports, once per check (one a period per
 * tag, cluster-wide), through the daemon's rate-limited, aggregating
 * EventRecorder (a repeat of the same message within its window only counts).
 *
 * @module
 */
import type { CoreV1Event, KubernetesObject } from "@kubernetes/client-node";
import { isSha256Digest, tryNormalizeReference } from "../images/reference.ts";
import { truncateEcho } from "../images/desired_images.ts";
import { isLedgerTag } from "./tag_ledger.ts";

/** The reason of a tag check's Event. */
export const TAG_CHECKED_REASON = "TagChecked";

/** The field selector the leader watches these Events with. */
export const TAG_CHECKED_SELECTOR = `reason=${TAG_CHECKED_REASON}`;

const RESOLVED = " resolved to ";
const FAILED = " could not be checked: ";

/** What one check found: a digest, or an error. */
export type TagCheckOutcome = { readonly digest: string } | { readonly error: string };

/** The Event message of a check of `ref`. Pure. */
export function tagCheckedMessage(ref: string, outcome: TagCheckOutcome): string {
  return "digest" in outcome
    ? `${ref}${RESOLVED}${outcome.digest}`
    : `${ref}${FAILED}${truncateEcho(outcome.error, 512)}`;
}

/** A tag check as the leader reads it from an Event. */
export interface TagCheck {
  readonly ref: string;
  readonly node: string;
  /** The manifest digest found; absent when the check failed. */
  readonly digest?: string;
  /** The Event's count: a repeat of the same Event bumps it. */
  readonly count: number;
  /** When the check last happened (ms since the epoch), for ordering a relist. */
  readonly at: number;
}

/**
 * Reads a tag check from an Event, or undefined when it is not one this
 * daemon writes (wrong reason, no node, a message that does not parse, a
 * reference that is not a normalised tag, a digest that is not sha256).
 * Pure; never throws on data.
 */
export function readTagCheck(obj: KubernetesObject): TagCheck | undefined {
  const event = obj as CoreV1Event;
  if (event.reason !== TAG_CHECKED_REASON) return undefined;
  const node = event.source?.host || event.reportingInstance;
  const message = event.message;
  if (!node || typeof message !== "string") return undefined;
  let ref: string;
  let digest: string | undefined;
  const resolved = message.indexOf(RESOLVED);
  const failed = message.indexOf(FAILED);
  if (resolved > 0 && (failed < 0 || resolved < failed)) {
    ref = message.slice(0, resolved);
    digest = message.slice(resolved + RESOLVED.length);
    if (!isSha256Digest(digest)) return undefined;
  } else if (failed > 0) {
    ref = message.slice(0, failed);
  } else {
    return undefined;
  }
  const normalized = tryNormalizeReference(ref);
  if (!normalized.ok || normalized.ref !== ref || !isLedgerTag(ref)) return undefined;
  const last = event.lastTimestamp ?? event.eventTime ?? event.firstTimestamp;
  const at = last === undefined ? 0 : new Date(last as unknown as string).getTime();
  return {
    ref,
    node,
    ...(digest !== undefined ? { digest } : {}),
    count: event.count ?? 1,
    at: Number.isFinite(at) ? at : 0,
  };
}
