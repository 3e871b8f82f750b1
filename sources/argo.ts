/**
 * The Argo Workflows sources: WorkflowTemplates, ClusterWorkflowTemplates and
 * CronWorkflows. Each is a separate watch; Argo may be absent, in which case
 * the source reports itself unavailable and keeps retrying.
 *
 * @module
 */
import type { KubernetesObject } from "@kubernetes/client-node";
import { customObjectCollection } from "../kube/listers.ts";
import {
  imagesFromClusterWorkflowTemplate,
  imagesFromCronWorkflow,
  imagesFromWorkflowTemplate,
  MAX_INLINE_DEPTH,
} from "./argo_images.ts";
import { WatchedSource, type WatchedSourceDeps } from "./watched_source.ts";

/** Argo's API group and version. */
export const ARGO_GROUP = "argoproj.io";
export const ARGO_VERSION = "v1alpha1";

/** The Argo kinds the daemon reads images from. */
export const ARGO_KINDS = {
  workflowtemplate: {
    kind: "WorkflowTemplate",
    plural: "workflowtemplates",
    extract: imagesFromWorkflowTemplate,
  },
  clusterworkflowtemplate: {
    kind: "ClusterWorkflowTemplate",
    plural: "clusterworkflowtemplates",
    extract: imagesFromClusterWorkflowTemplate,
  },
  cronworkflow: {
    kind: "CronWorkflow",
    plural: "cronworkflows",
    extract: imagesFromCronWorkflow,
  },
} as const satisfies Record<
  string,
  { kind: string; plural: string; extract: (obj: KubernetesObject) => Iterable<string> }
>;

type Obj = Record<string, unknown>;
const asObject = (v: unknown): Obj | undefined =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? v as Obj : undefined;

/** How deep inline templates nest in `template`, counting up to `limit + 1` at most. */
function inlineDepth(template: Obj, limit: number): number {
  if (limit < 0) return 0;
  let deepest = 0;
  const inlines: unknown[] = [];
  for (const group of Array.isArray(template.steps) ? template.steps : []) {
    for (const step of Array.isArray(group) ? group : [group]) inlines.push(asObject(step)?.inline);
  }
  const tasks = asObject(template.dag)?.tasks;
  for (const task of Array.isArray(tasks) ? tasks : []) inlines.push(asObject(task)?.inline);
  for (const inline of inlines) {
    const inner = asObject(inline);
    if (inner) deepest = Math.max(deepest, 1 + inlineDepth(inner, limit - 1));
  }
  return deepest;
}

/**
 * What is wrong with an Argo object's shape, if anything: a missing spec,
 * templates that are not a list, or inline templates nested past what the
 * extraction follows. Pure. Such an object contributes nothing and is
 * reported, instead of being read as if it asked for no images.
 */
export function argoObjectProblem(kind: ArgoKind, obj: unknown): string | undefined {
  const o = asObject(obj);
  const meta = asObject(o?.metadata);
  const name = meta?.namespace ? `${meta.namespace}/${meta?.name}` : `${meta?.name}`;
  const label = `${ARGO_KINDS[kind].kind} ${JSON.stringify(name)}`;
  const spec = asObject(o?.spec);
  if (!spec) return `${label}: spec is missing`;
  let workflowSpec = spec;
  let path = "spec";
  if (kind === "cronworkflow") {
    const inner = asObject(spec.workflowSpec);
    if (!inner) return `${label}: spec.workflowSpec is missing`;
    workflowSpec = inner;
    path = "spec.workflowSpec";
  }
  const templates = workflowSpec.templates;
  if (templates === undefined) {
    // A workflow that runs a WorkflowTemplate by reference has no templates of its own.
    if (asObject(workflowSpec.workflowTemplateRef)) return undefined;
    return `${label}: ${path}.templates is missing`;
  }
  if (!Array.isArray(templates)) {
    return `${label}: ${path}.templates is ${
      templates === null ? "null" : `a ${typeof templates}`
    }, expected a list of templates`;
  }
  for (const [i, template] of templates.entries()) {
    const t = asObject(template);
    if (!t) {
      return `${label}: ${path}.templates[${i}] is ${
        template === null ? "null" : `a ${typeof template}`
      }, expected a template`;
    }
    if (inlineDepth(t, MAX_INLINE_DEPTH) > MAX_INLINE_DEPTH) {
      return `${label}: template ${
        JSON.stringify(t.name ?? "")
      } nests inline templates deeper than ${MAX_INLINE_DEPTH} levels`;
    }
  }
  return undefined;
}

/** One of {@linkcode ARGO_KINDS}. */
export type ArgoKind = keyof typeof ARGO_KINDS;

/** Options for {@linkcode newArgoSource}. */
export type ArgoSourceOptions = WatchedSourceDeps;

/** Watches one Argo kind in all namespaces (or cluster-wide). */
export function newArgoSource(kind: ArgoKind, options: ArgoSourceOptions): WatchedSource {
  const spec = ARGO_KINDS[kind];
  return new WatchedSource({
    ...options,
    name: kind,
    kind: spec.kind,
    apiVersion: `${ARGO_GROUP}/${ARGO_VERSION}`,
    collections: [
      customObjectCollection(options.kubeConfig, {
        group: ARGO_GROUP,
        version: ARGO_VERSION,
        plural: spec.plural,
      }),
    ],
    extract: (obj) => {
      const problem = argoObjectProblem(kind, obj);
      if (problem !== undefined) throw new TypeError(problem);
      return spec.extract(obj);
    },
  });
}
