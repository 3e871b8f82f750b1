/**
 * The canary of a tag: the one node that checks the tag against its registry
 * each period. Chosen by rendezvous (highest random weight) hashing of the
 * reference over the ready nodes, so the work spreads evenly and a tag's
 * canary moves only when its node leaves the candidates.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** The weight of `node` for `ref`: the first 48 bits of sha256(ref, node). Pure. */
function weight(ref: string, node: string): number {
  const hex = createHash("sha256").update(ref).update("\0").update(node).digest("hex");
  return parseInt(hex.slice(0, 12), 16);
}

/**
 * The canary of `ref` among `nodes` (node names), or undefined when there is
 * none. Deterministic: the same candidates give the same node, whatever
 * their order; removing any node other than the chosen one changes nothing.
 */
export function chooseCanary(ref: string, nodes: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestWeight = -1;
  for (const node of nodes) {
    const w = weight(ref, node);
    // Ties (48-bit collisions) break by name, so the order never matters.
    if (w > bestWeight || (w === bestWeight && best !== undefined && node < best)) {
      best = node;
      bestWeight = w;
    }
  }
  return best;
}
