/**
 * The CPU cost of reading list pages item by item ({@linkcode JsonListSplitter}
 * plus one `JSON.parse` per item) against one `JSON.parse` of the whole page,
 * on the same bytes, interleaved, in this process.
 *
 * @module
 */
import { JsonListSplitter } from "../kube/json_list_splitter.ts";
import { imagePool, workflowTemplates } from "./generate.ts";
import { round } from "./harness.ts";

/** The comparison's numbers. */
export interface ListParseCost {
  readonly pageBytes: number;
  readonly wholeMsPerMB: number;
  readonly splitMsPerMB: number;
  readonly ratio: number;
  /** Extra CPU for `totalBytes` of list pages, ms. */
  readonly extraMs: number;
}

/** Measures both ways on pages of 500 WorkflowTemplates; `totalBytes` scales the extra cost. */
export function listParseCost(totalBytes: number, repeats = 7): ListParseCost {
  const items = workflowTemplates({ count: 500, pool: imagePool(400) });
  const text = JSON.stringify({
    apiVersion: "argoproj.io/v1alpha1",
    kind: "WorkflowTemplateList",
    metadata: { resourceVersion: "1", continue: "next" },
    items,
  });
  const bytes = new TextEncoder().encode(text);
  // Chunks of 64 KiB, as a TLS connection delivers them.
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += 65_536) chunks.push(bytes.subarray(at, at + 65_536));
  let sink = 0;
  const whole = () => {
    const list = JSON.parse(new TextDecoder().decode(bytes));
    sink += list.items.length;
  };
  const split = () => {
    const splitter = new JsonListSplitter((t) => {
      sink += JSON.parse(t).metadata ? 1 : 0;
    });
    for (const chunk of chunks) splitter.push(chunk);
    JSON.parse(splitter.end());
  };
  whole();
  split();
  const times = { whole: [] as number[], split: [] as number[] };
  for (let i = 0; i < repeats; i++) {
    for (
      const [name, fn] of i % 2
        ? [["split", split], ["whole", whole]] as const
        : [["whole", whole], ["split", split]] as const
    ) {
      const t0 = performance.now();
      fn();
      times[name].push(performance.now() - t0);
    }
  }
  if (sink < 0) throw new Error("unreachable");
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const mb = bytes.length / 1e6;
  const wholeMs = median(times.whole);
  const splitMs = median(times.split);
  return {
    pageBytes: bytes.length,
    wholeMsPerMB: round(wholeMs / mb, 2),
    splitMsPerMB: round(splitMs / mb, 2),
    ratio: round(splitMs / wholeMs, 2),
    extraMs: round(((splitMs - wholeMs) / mb) * (totalBytes / 1e6)),
  };
}
