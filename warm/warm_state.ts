/**
 * Whether a node is warm, from the puller's view of its desired images: a
 * pure function, so the rules are tested without a cluster.
 *
 * @module
 */
import type { ImageStatus } from "../puller/node_puller.ts";

/** The node condition the daemon keeps on its own Node. */
export const CONDITION_TYPE = "ImagesPrePulled";

/** How many failing images a condition message names at most. */
const MAX_NAMED = 5;

/** A node's warmth, and the condition that says it. */
export interface WarmState {
  /** Every desired image that can be pulled has been made present. */
  readonly warm: boolean;
  readonly desired: number;
  readonly present: number;
  /** Images still missing that may yet be pulled. */
  readonly missing: number;
  /** Images whose last attempt failed (parked permanent failures included). */
  readonly failing: readonly string[];
  /** Permanent failures: they do not keep a node cold. */
  readonly permanent: readonly string[];
  readonly condition: { status: "True" | "False"; reason: string; message: string };
}

function named(refs: readonly string[]): string {
  const shown = refs.slice(0, MAX_NAMED).join(", ");
  return refs.length > MAX_NAMED ? `${shown} and ${refs.length - MAX_NAMED} more` : shown;
}

/** Computes the warm state of `images` (the puller's status). Pure. */
export function warmState(images: readonly ImageStatus[]): WarmState {
  let present = 0;
  let missing = 0;
  const failing: string[] = [];
  const permanent: string[] = [];
  for (const image of images) {
    if (image.everPresent) {
      present++;
      continue;
    }
    if (image.state === "failed") failing.push(image.ref);
    if (image.permanent) permanent.push(image.ref);
    else missing++;
  }
  const desired = images.length;
  const warm = missing === 0;
  const failed = permanent.length > 0
    ? `; ${permanent.length} cannot be pulled (${named(permanent)})`
    : "";
  const condition = warm
    ? {
      status: "True" as const,
      reason: permanent.length > 0 ? "PresentExceptFailed" : "AllImagesPresent",
      message: `${present} of ${desired} desired images present${failed}`,
    }
    : {
      status: "False" as const,
      reason: failing.length > permanent.length ? "ImagesFailing" : "ImagesMissing",
      message: `${missing} of ${desired} desired images missing${
        failing.length > 0 ? `; failing: ${named(failing)}` : ""
      }`,
    };
  return { warm, desired, present, missing, failing, permanent, condition };
}
