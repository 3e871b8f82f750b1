/**
 * Structural schemas of the kinds the fake serves: which fields each kind
 * declares, so that writes handle unknown fields as kube-apiserver does
 * (`fieldValidation=Strict` rejects them, `Warn`, the default, drops them
 * with a warning, `Ignore` drops them silently), and so the OpenAPI v3
 * documents describe them.
 *
 * Simplification, on purpose: the schemas are closed (unknown fields found)
 * down to the object, its metadata, and for pods the pod spec and each
 * container; below that (a probe, a volume, a node's status, an Argo spec,
 * which Argo's own CRDs leave open too) everything is accepted. Value types
 * are described but not enforced.
 *
 * @module
 */
import type { ResourceName } from "./resources.ts";

/** A structural schema, the subset of OpenAPI v3 the fake needs. */
export interface Schema {
  readonly type: "object" | "array" | "string" | "integer" | "boolean" | "number";
  readonly format?: string;
  readonly description?: string;
  /** Declared fields; with neither `additionalProperties` nor `open`, the only ones allowed. */
  readonly properties?: Readonly<Record<string, Schema>>;
  /** A map's values. */
  readonly additionalProperties?: Schema;
  /** Anything is accepted below (`x-kubernetes-preserve-unknown-fields`). */
  readonly open?: boolean;
  readonly items?: Schema;
}

const string: Schema = { type: "string" };
const integer: Schema = { type: "integer", format: "int64" };
const boolean: Schema = { type: "boolean" };
const time: Schema = { type: "string", format: "date-time" };
const open: Schema = { type: "object", open: true };
const stringMap: Schema = { type: "object", additionalProperties: string };
const list = (items: Schema): Schema => ({ type: "array", items });
const object = (properties: Record<string, Schema>, description?: string): Schema => ({
  type: "object",
  properties,
  ...(description ? { description } : {}),
});
const openFields = (...names: string[]) => Object.fromEntries(names.map((n) => [n, open]));

/** `meta/v1 ObjectMeta`. */
const objectMeta = object({
  name: string,
  generateName: string,
  namespace: string,
  selfLink: string,
  uid: string,
  resourceVersion: string,
  generation: integer,
  creationTimestamp: time,
  deletionTimestamp: time,
  deletionGracePeriodSeconds: integer,
  labels: stringMap,
  annotations: stringMap,
  ownerReferences: list(object({
    apiVersion: string,
    kind: string,
    name: string,
    uid: string,
    controller: boolean,
    blockOwnerDeletion: boolean,
  })),
  finalizers: list(string),
  managedFields: list(open),
}, "Standard object's metadata.");

const container = object({
  name: string,
  image: string,
  command: list(string),
  args: list(string),
  workingDir: string,
  imagePullPolicy: string,
  restartPolicy: string,
  terminationMessagePath: string,
  terminationMessagePolicy: string,
  stdin: boolean,
  stdinOnce: boolean,
  tty: boolean,
  ports: list(open),
  env: list(open),
  envFrom: list(open),
  volumeMounts: list(open),
  volumeDevices: list(open),
  resizePolicy: list(open),
  ...openFields(
    "resources",
    "lifecycle",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "securityContext",
  ),
});

const podSpec = object({
  containers: list(container),
  initContainers: list(container),
  ephemeralContainers: list(open),
  nodeName: string,
  nodeSelector: stringMap,
  restartPolicy: string,
  dnsPolicy: string,
  schedulerName: string,
  serviceAccount: string,
  serviceAccountName: string,
  automountServiceAccountToken: boolean,
  terminationGracePeriodSeconds: integer,
  activeDeadlineSeconds: integer,
  priority: integer,
  priorityClassName: string,
  preemptionPolicy: string,
  runtimeClassName: string,
  hostname: string,
  subdomain: string,
  hostNetwork: boolean,
  hostPID: boolean,
  hostIPC: boolean,
  hostUsers: boolean,
  shareProcessNamespace: boolean,
  setHostnameAsFQDN: boolean,
  enableServiceLinks: boolean,
  tolerations: list(open),
  volumes: list(open),
  imagePullSecrets: list(open),
  hostAliases: list(open),
  readinessGates: list(open),
  resourceClaims: list(open),
  schedulingGates: list(open),
  topologySpreadConstraints: list(open),
  ...openFields("affinity", "securityContext", "dnsConfig", "os", "overhead", "resources"),
});

const top = (fields: Record<string, Schema>, description: string): Schema =>
  object({ apiVersion: string, kind: string, metadata: objectMeta, ...fields }, description);

const argo = (kind: string, status: boolean): Schema =>
  top(
    { spec: open, ...(status ? { status: open } : {}) },
    `${kind} of Argo Workflows (argoproj.io/v1alpha1); its spec is left open, as in Argo's own CRD.`,
  );

/** The schema of each kind, by resource. */
export const SCHEMAS: Readonly<Record<ResourceName, Schema>> = {
  pods: top(
    { spec: podSpec, status: open },
    "Pod is a collection of containers that can run on a host.",
  ),
  configmaps: top(
    { data: stringMap, binaryData: stringMap, immutable: boolean },
    "ConfigMap holds configuration data for pods to consume.",
  ),
  secrets: top(
    { data: stringMap, stringData: stringMap, type: string, immutable: boolean },
    "Secret holds secret data of a certain type.",
  ),
  events: top({
    action: string,
    count: integer,
    eventTime: { type: "string", format: "date-time" },
    firstTimestamp: time,
    lastTimestamp: time,
    involvedObject: open,
    message: string,
    reason: string,
    related: open,
    reportingComponent: string,
    reportingInstance: string,
    series: open,
    source: open,
    type: string,
  }, "Event is a report of an event somewhere in the cluster."),
  nodes: top({ spec: open, status: open }, "Node is a worker node in Kubernetes."),
  namespaces: top(
    { spec: object({ finalizers: list(string) }), status: open },
    "Namespace provides a scope for Names.",
  ),
  leases: top(
    {
      spec: object({
        holderIdentity: string,
        leaseDurationSeconds: integer,
        acquireTime: { type: "string", format: "date-time" },
        renewTime: { type: "string", format: "date-time" },
        leaseTransitions: integer,
        preferredHolder: string,
        strategy: string,
      }),
    },
    "Lease defines a lease concept.",
  ),
  workflowtemplates: argo("WorkflowTemplate", false),
  clusterworkflowtemplates: argo("ClusterWorkflowTemplate", false),
  cronworkflows: argo("CronWorkflow", true),
};

/** Paths (`spec.foo`, `spec.containers[0].imagePullPolicyy`) of fields the schema does not declare. */
export function unknownFields(schema: Schema, value: unknown, path = ""): string[] {
  if (schema.open || value === null || typeof value !== "object") return [];
  if (Array.isArray(value)) {
    if (!schema.items) return [];
    return value.flatMap((v, i) => unknownFields(schema.items!, v, `${path}[${i}]`));
  }
  const out: string[] = [];
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const at = path ? `${path}.${key}` : key;
    const declared = schema.properties?.[key] ?? schema.additionalProperties;
    if (declared) out.push(...unknownFields(declared, v, at));
    else if (schema.properties) out.push(at);
  }
  return out;
}

/** A copy of `value` without the fields the schema does not declare. */
export function pruneUnknown(schema: Schema, value: unknown): unknown {
  if (schema.open || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    return schema.items ? value.map((v) => pruneUnknown(schema.items!, v)) : value;
  }
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const declared = schema.properties?.[key] ?? schema.additionalProperties;
    if (declared) out[key] = pruneUnknown(declared, v);
    else if (!schema.properties) out[key] = v;
  }
  return out;
}

/** The schema as an OpenAPI v3 schema object. */
export function openApiSchema(schema: Schema): Record<string, unknown> {
  return {
    type: schema.type,
    ...(schema.format ? { format: schema.format } : {}),
    ...(schema.description ? { description: schema.description } : {}),
    ...(schema.properties
      ? {
        properties: Object.fromEntries(
          Object.entries(schema.properties).map(([k, v]) => [k, openApiSchema(v)]),
        ),
      }
      : {}),
    ...(schema.additionalProperties
      ? { additionalProperties: openApiSchema(schema.additionalProperties) }
      : {}),
    ...(schema.items ? { items: openApiSchema(schema.items) } : {}),
    ...(schema.open ? { "x-kubernetes-preserve-unknown-fields": true } : {}),
  };
}
