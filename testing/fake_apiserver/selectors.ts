/**
 * Field selectors and the combined object filter (namespace, labels, fields)
 * that lists and watches apply.
 *
 * @module
 */
import { matchesLabels, parseLabelSelector, type Requirement } from "../../kube/label_selector.ts";
import type { ResourceInfo } from "./resources.ts";
import { badRequest } from "./status.ts";
import type { KubeObject } from "./types.ts";

/** One `field=value` or `field!=value` requirement. */
export interface FieldRequirement {
  readonly field: string;
  readonly operator: "=" | "!=";
  readonly value: string;
}

const COMMON_FIELDS = ["metadata.name", "metadata.namespace"];
const EXTRA_FIELDS: Partial<Record<string, readonly string[]>> = {
  pods: [
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
  ],
  events: [
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
  ],
  secrets: ["type"],
  namespaces: ["status.phase"],
  nodes: ["spec.unschedulable"],
};

/**
 * Parses a field selector for `info`.
 *
 * @throws {ApiError} 400 for bad syntax or a field the resource does not index.
 */
export function parseFieldSelector(info: ResourceInfo, text: string): FieldRequirement[] {
  if (text.trim() === "") return [];
  const allowed = [...COMMON_FIELDS, ...(EXTRA_FIELDS[info.plural] ?? [])];
  return text.split(",").map((raw) => {
    const m = raw.trim().match(/^([A-Za-z.]+)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw badRequest(`invalid selector: '${text}'; can't understand '${raw}'`);
    const [, field, op, value] = m;
    if (!allowed.includes(field)) {
      throw badRequest(`field label not supported: ${field}`);
    }
    return { field, operator: op === "!=" ? "!=" : "=", value: value.trim() };
  });
}

function fieldValue(obj: KubeObject, field: string): string {
  // "source" on events means source.component, as in kube-apiserver.
  const path = field === "source" ? "source.component" : field;
  let current: unknown = obj;
  for (const part of path.split(".")) {
    if (current === null || typeof current !== "object") return "";
    current = (current as Record<string, unknown>)[part];
  }
  if (current === undefined || current === null) return "";
  return String(current);
}

/** What a list or watch selects. */
export interface ObjectFilter {
  /** Only this namespace; undefined = all. */
  readonly namespace?: string;
  readonly labels: readonly Requirement[];
  readonly fields: readonly FieldRequirement[];
}

/**
 * Builds a filter from query parameters.
 *
 * @throws {ApiError} 400 for a bad label or field selector.
 */
export function buildFilter(
  info: ResourceInfo,
  options: { namespace?: string; labelSelector?: string; fieldSelector?: string },
): ObjectFilter {
  let labels: Requirement[];
  try {
    labels = parseLabelSelector(options.labelSelector ?? "");
  } catch (error) {
    throw badRequest(`unable to parse requirement: ${(error as Error).message}`);
  }
  return {
    namespace: info.namespaced ? options.namespace : undefined,
    labels,
    fields: parseFieldSelector(info, options.fieldSelector ?? ""),
  };
}

/** Whether `obj` passes `filter`. */
export function matchesFilter(filter: ObjectFilter, obj: KubeObject): boolean {
  if (filter.namespace !== undefined && obj.metadata.namespace !== filter.namespace) return false;
  if (filter.labels.length > 0 && !matchesLabels(filter.labels, obj.metadata.labels)) return false;
  for (const f of filter.fields) {
    const equal = fieldValue(obj, f.field) === f.value;
    if (equal !== (f.operator === "=")) return false;
  }
  return true;
}
