/**
 * What a node's pulls tell the operator beyond the log: the Events on the
 * daemon's own pod. That is where an operator looks (`kubectl describe pod`),
 * and pull pods are deleted at once.
 *
 * @module
 */
import type { EventSink, InvolvedObject } from "../kube/events.ts";
import type { Logger } from "../log/logger.ts";
import type { PullFinished } from "./node_puller.ts";
import { TAG_CHECKED_REASON, tagCheckedMessage } from "../ledger/tag_check_event.ts";
import { isSha256Digest } from "../images/reference.ts";

/** Options for {@linkcode PullEvents}. */
export interface PullEventsOptions {
  /** This node, named in the messages. */
  node: string;
  /** The daemon's own pod; without it no Events are emitted (the log line still is). */
  self?: InvolvedObject;
  events: EventSink;
  log: Logger;
  /** How many images are desired now. */
  desiredCount(): number;
  /** Whether every desired image is present on the node ({@linkcode NodePuller.allPresent}). */
  allPresent(): boolean;
}

/**
 * The Event rules of the puller's hooks:
 *
 * - `AllImagesPresent` (Normal), once per daemon lifetime, the first time
 *   every desired image (at least one) is present on the node;
 * - `PullFailed` (Warning) for every failed attempt that counts (not for
 *   cancellations), with the failure's message;
 * - `TagChecked` (Normal with the digest, Warning with the error) for a pull
 *   of a tag this node checks as the tag ledger's canary, when the pull
 *   reveals nothing to the leader otherwise (the CRI strategy): the leader
 *   reads it (ledger/tag_check_event.ts).
 */
export class PullEvents {
  readonly #o: PullEventsOptions;
  #announcedAllPresent = false;

  constructor(options: PullEventsOptions) {
    this.#o = options;
  }

  /** For {@linkcode NodePullerOptions.onPresent}. */
  present(): void {
    const { node, self, events, log } = this.#o;
    const count = this.#o.desiredCount();
    if (this.#announcedAllPresent || count === 0 || !this.#o.allPresent()) return;
    this.#announcedAllPresent = true;
    log.info("Every desired image is present on this node", { images: count });
    if (self) {
      events.emit(
        "Normal",
        self,
        "AllImagesPresent",
        `Node ${node} holds all ${count} desired images`,
      );
    }
  }

  /**
   * Reports a canary's check of tag `ref` to the leader. A success without a
   * manifest digest (`sha256:…`) reports nothing: there is nothing to learn.
   */
  tagChecked(ref: string, result: PullFinished): void {
    const { self, events } = this.#o;
    if (!self || result.cancelled) return;
    if (result.error) {
      events.emit(
        "Warning",
        self,
        TAG_CHECKED_REASON,
        tagCheckedMessage(ref, { error: result.error.message }),
      );
      return;
    }
    const digest = result.digest?.slice(result.digest.lastIndexOf("@") + 1);
    if (!result.ok || digest === undefined || !isSha256Digest(digest)) return;
    events.emit("Normal", self, TAG_CHECKED_REASON, tagCheckedMessage(ref, { digest }));
  }

  /** For {@linkcode NodePullerOptions.onPullFinished}. */
  pullFinished(ref: string, result: PullFinished): void {
    const { self, events } = this.#o;
    if (result.error && self) {
      events.emit("Warning", self, "PullFailed", `${ref}: ${result.error.message}`);
    }
  }
}
