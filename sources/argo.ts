/**
 * The Argo Workflows sources: WorkflowTemplates, ClusterWorkflowTemplates and
 * CronWorkflows. Each is a separate watch; Argo may be absent, in which case
 * the source reports itself unavailable and keeps retrying.
 *
 * @module
 */
import { customObjectCollection } from "../kube/listers.ts";
import { EXTRACTORS } from "./extractors.ts";
import { WatchedSource, type WatchedSourceDeps } from "./watched_source.ts";

/** Argo's API group and version. */
export const ARGO_GROUP = "argoproj.io";
export const ARGO_VERSION = "v1alpha1";

/** The Argo kinds the daemon reads images from. */
export const ARGO_KINDS = {
  workflowtemplate: {
    kind: "WorkflowTemplate",
    plural: "workflowtemplates",
  },
  clusterworkflowtemplate: {
    kind: "ClusterWorkflowTemplate",
    plural: "clusterworkflowtemplates",
  },
  cronworkflow: {
    kind: "CronWorkflow",
    plural: "cronworkflows",
  },
} as const satisfies Record<string, { kind: string; plural: string }>;

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
    // The extraction checks the object's shape and its limits itself, so that
    // the `images` command rejects exactly what the daemon rejects. The
    // function itself, not a wrapper: the list parser runs it only then.
    extract: EXTRACTORS[kind],
  });
}
