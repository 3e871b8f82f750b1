/**
 * Server-side printing: the `meta.k8s.io` Table a client gets when it asks
 * for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` (as kubectl get
 * does), with the columns kube-apiserver prints for each kind, so
 * `kubectl get events` shows type, reason and message and `kubectl get pods`
 * their status.
 *
 * @module
 */
import type { ResourceInfo } from "./resources.ts";
import type { KubeObject } from "./types.ts";

/** One column of a Table. */
interface Column {
  readonly name: string;
  readonly type: "string" | "integer" | "date";
  readonly format?: string;
  readonly description: string;
  /** 0: always shown; 1: only with `-o wide`. */
  readonly priority: number;
  readonly cell: (obj: KubeObject, now: number) => string | number;
}

/** A column; a string cell shown without `-o wide`, unless `options` say otherwise. */
function column(
  name: string,
  description: string,
  cell: Column["cell"],
  options: Partial<Pick<Column, "type" | "format" | "priority">> = {},
): Column {
  return { name, description, cell, type: "string", priority: 0, ...options };
}

/** The Table version a request's Accept header asks for, if it asks for one. */
export function tableVersionOf(accept: string | null): "v1" | "v1beta1" | undefined {
  for (const range of (accept ?? "").split(",")) {
    const [type, ...params] = range.split(";").map((p) => p.trim());
    if (type !== "application/json") continue;
    const p = new Map(params.map((kv) => kv.split("=").map((s) => s.trim()) as [string, string]));
    if (p.get("as") !== "Table" || p.get("g") !== "meta.k8s.io") continue;
    const v = p.get("v");
    if (v === "v1" || v === "v1beta1") return v;
  }
  return undefined;
}

/**
 * The age of a timestamp as kubectl prints it: seconds below two minutes,
 * then minutes (with seconds below ten), hours (with minutes below eight),
 * days (with hours below eight days), years.
 */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  const withRest = (whole: number, unit: string, rest: number, restUnit: string) =>
    rest === 0 ? `${whole}${unit}` : `${whole}${unit}${rest}${restUnit}`;
  if (minutes < 10) return withRest(minutes, "m", seconds % 60, "s");
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return withRest(hours, "h", minutes % 60, "m");
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 8) return withRest(days, "d", hours % 24, "h");
  if (hours < 24 * 365 * 2) return `${days}d`;
  const years = Math.floor(days / 365);
  if (hours < 24 * 365 * 8) return withRest(years, "y", days % 365, "d");
  return `${years}y`;
}

const field = (obj: KubeObject, path: string): unknown =>
  path.split(".").reduce<unknown>(
    (v, key) => (v && typeof v === "object" ? (v as Record<string, unknown>)[key] : undefined),
    obj,
  );
const str = (v: unknown) => (v === undefined || v === null ? "" : String(v));
const since = (timestamp: unknown, now: number) =>
  typeof timestamp === "string" && timestamp
    ? humanDuration(now - Date.parse(timestamp))
    : "<unknown>";

const NAME: Column = column(
  "Name",
  "Name must be unique within a namespace.",
  (o) => str(o.metadata.name),
  { format: "name" },
);
const AGE: Column = column(
  "Age",
  "CreationTimestamp is the time this object was created.",
  (o, now) => since(o.metadata.creationTimestamp, now),
);
const countOf = (v: unknown) => (v && typeof v === "object" ? Object.keys(v).length : 0);

interface ContainerStatus {
  ready?: boolean;
  restartCount?: number;
  state?: {
    waiting?: { reason?: string };
    terminated?: { reason?: string; signal?: number; exitCode?: number };
  };
}

/** The STATUS kubectl shows for a pod, as kube-apiserver's printer computes it (simplified). */
function podStatus(pod: KubeObject): string {
  const status = (pod.status ?? {}) as {
    phase?: string;
    reason?: string;
    initContainerStatuses?: ContainerStatus[];
    containerStatuses?: ContainerStatus[];
  };
  let reason = status.reason || status.phase || "Unknown";
  const inits = status.initContainerStatuses ?? [];
  const initTotal = ((pod.spec as { initContainers?: unknown[] })?.initContainers ?? []).length;
  let initializing = false;
  inits.forEach((c, i) => {
    const t = c.state?.terminated;
    if (t && t.exitCode === 0) return;
    if (initializing) return;
    initializing = true;
    if (t) {
      reason = `Init:${t.reason || (t.signal ? `Signal:${t.signal}` : `ExitCode:${t.exitCode}`)}`;
    } else if (c.state?.waiting?.reason && c.state.waiting.reason !== "PodInitializing") {
      reason = `Init:${c.state.waiting.reason}`;
    } else reason = `Init:${i}/${initTotal}`;
  });
  if (!initializing) {
    for (const c of [...(status.containerStatuses ?? [])].reverse()) {
      const waiting = c.state?.waiting?.reason;
      const t = c.state?.terminated;
      if (waiting) reason = waiting;
      else if (t) {
        reason = t.reason || (t.signal ? `Signal:${t.signal}` : `ExitCode:${t.exitCode}`);
      }
    }
  }
  if (pod.metadata.deletionTimestamp) {
    reason = status.reason === "NodeLost" ? "Unknown" : "Terminating";
  }
  return reason;
}

const COLUMNS: Record<string, readonly Column[]> = {
  pods: [
    NAME,
    column("Ready", "The aggregate readiness state of this pod for accepting traffic.", (o) => {
      const statuses = (field(o, "status.containerStatuses") ?? []) as ContainerStatus[];
      const total = ((field(o, "spec.containers") ?? []) as unknown[]).length;
      return `${statuses.filter((c) => c.ready).length}/${total}`;
    }),
    column("Status", "The aggregate status of the containers in this pod.", podStatus),
    column(
      "Restarts",
      "The number of times the containers in this pod have been restarted.",
      (o) =>
        String(
          ((field(o, "status.containerStatuses") ?? []) as ContainerStatus[]).reduce(
            (n, c) => n + (c.restartCount ?? 0),
            0,
          ),
        ),
    ),
    AGE,
    column(
      "IP",
      "IP address allocated to the pod.",
      (o) => str(field(o, "status.podIP")) || "<none>",
      { priority: 1 },
    ),
    column(
      "Node",
      "Name of the Node the Pod is bound to.",
      (o) => str(field(o, "spec.nodeName")) || "<none>",
      { priority: 1 },
    ),
  ],
  events: [
    column(
      "Last Seen",
      "The time of the most recent occurrence.",
      (o, now) => since(o.lastTimestamp ?? o.eventTime ?? o.metadata.creationTimestamp, now),
    ),
    column("Type", "Type of this event (Normal, Warning).", (o) => str(o.type)),
    column("Reason", "Why the action was taken.", (o) => str(o.reason)),
    column("Object", "The object this Event is about.", (o) => {
      const kind = str(field(o, "involvedObject.kind")).toLowerCase();
      return `${kind}/${str(field(o, "involvedObject.name"))}`;
    }),
    column(
      "Source",
      "The component reporting this event.",
      (o) =>
        [str(field(o, "source.component")), str(field(o, "source.host"))].filter(Boolean)
          .join(", "),
      { priority: 1 },
    ),
    column(
      "Message",
      "A human-readable description of the status of this operation.",
      (o) => str(o.message),
    ),
    column("Count", "The number of times this event has occurred.", (o) => str(o.count ?? 1), {
      priority: 1,
    }),
  ],
  configmaps: [
    NAME,
    column(
      "Data",
      "Number of keys in data and binaryData.",
      (o) => countOf(o.data) + countOf(o.binaryData),
      { type: "integer" },
    ),
    AGE,
  ],
  secrets: [
    NAME,
    column("Type", "The type of secret.", (o) => str(o.type)),
    column("Data", "Number of keys in data.", (o) => countOf(o.data), { type: "integer" }),
    AGE,
  ],
  nodes: [
    NAME,
    column("Status", "The status of the node.", (o) => {
      const ready = ((field(o, "status.conditions") ?? []) as { type: string; status: string }[])
        .find((c) => c.type === "Ready");
      let status = ready?.status === "True" ? "Ready" : "NotReady";
      if (field(o, "spec.unschedulable")) status += ",SchedulingDisabled";
      return status;
    }),
    column("Roles", "The roles of the node.", (o) =>
      Object.keys(o.metadata.labels ?? {})
        .filter((l) => l.startsWith("node-role.kubernetes.io/"))
        .map((l) => l.slice("node-role.kubernetes.io/".length)).join(",") || "<none>"),
    AGE,
    column(
      "Version",
      "Kubelet Version reported by the node.",
      (o) => str(field(o, "status.nodeInfo.kubeletVersion")),
    ),
  ],
  namespaces: [
    NAME,
    column("Status", "The status of the namespace.", (o) => str(field(o, "status.phase"))),
    AGE,
  ],
};

/** A `meta.k8s.io` Table of `items`. */
export function tableOf(
  info: ResourceInfo,
  items: readonly KubeObject[],
  options: {
    version: "v1" | "v1beta1";
    /** `includeObject`: `None`, `Object`, or (default) `PartialObjectMetadata`. */
    includeObject?: string | null;
    listMeta?: Record<string, unknown>;
    now?: number;
  },
): Record<string, unknown> {
  // Custom resources without printer columns print their name and age.
  const columns = COLUMNS[info.plural] ?? [NAME, AGE];
  const now = options.now ?? Date.now();
  const include = options.includeObject || "PartialObjectMetadata";
  return {
    kind: "Table",
    apiVersion: `meta.k8s.io/${options.version}`,
    metadata: options.listMeta ?? {},
    columnDefinitions: columns.map(({ name, type, format, description, priority }) => ({
      name,
      type,
      format: format ?? "",
      description,
      priority,
    })),
    rows: items.map((obj) => ({
      cells: columns.map((c) => c.cell(obj, now)),
      ...(include === "None" ? {} : {
        object: include === "Object" ? obj : {
          kind: "PartialObjectMetadata",
          apiVersion: `meta.k8s.io/${options.version}`,
          metadata: obj.metadata,
        },
      }),
    })),
  };
}
