/**
 * Deny rules that model a narrow RBAC: a request matching a rule gets 403
 * Forbidden with kube-apiserver's message shape.
 *
 * @module
 */
import { type ApiError, ApiError as ApiErrorClass, failureStatus } from "./status.ts";

/** A deny rule; an omitted field matches anything. */
export interface DenyRule {
  /** get, list, watch, create, update, patch, delete, deletecollection. */
  readonly verb?: string;
  /** Plural, optionally with subresource: `configmaps`, `pods/status`. */
  readonly resource?: string;
  /**
   * Namespace; `""` means the cluster scope (lists across all namespaces and cluster-scoped
   * resources). Omitted = any scope.
   */
  readonly namespace?: string;
}

/** What is being authorised. */
export interface Attributes {
  readonly user: string;
  readonly verb: string;
  readonly resource: string;
  readonly subresource?: string;
  readonly group: string;
  readonly namespace?: string;
  readonly name?: string;
}

/** The mutable rule set of one server. */
export class Authorizer {
  #rules: DenyRule[] = [];

  /** Adds a rule; returns its undo. */
  deny(rule: DenyRule): () => void {
    const entry = { ...rule };
    this.#rules.push(entry);
    return () => {
      this.#rules = this.#rules.filter((r) => r !== entry);
    };
  }

  /** Removes every rule. */
  reset(): void {
    this.#rules = [];
  }

  /** The 403 for `attributes`, or undefined when allowed. */
  check(attributes: Attributes): ApiError | undefined {
    const full = attributes.subresource
      ? `${attributes.resource}/${attributes.subresource}`
      : attributes.resource;
    const denied = this.#rules.some((rule) =>
      (rule.verb === undefined || rule.verb === attributes.verb) &&
      (rule.resource === undefined || rule.resource === full) &&
      (rule.namespace === undefined || rule.namespace === (attributes.namespace ?? ""))
    );
    return denied ? forbidden(attributes) : undefined;
  }
}

/** The 403 kube-apiserver's RBAC authorizer answers for `attributes`. */
export function forbidden(a: Attributes): ApiError {
  const full = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const qualified = a.group ? `${a.resource}.${a.group}` : a.resource;
  const subject = a.name !== undefined ? `${qualified} "${a.name}"` : qualified;
  const scope = a.namespace !== undefined
    ? `in the namespace "${a.namespace}"`
    : "at the cluster scope";
  return new ApiErrorClass(
    failureStatus(
      403,
      "Forbidden",
      `${subject} is forbidden: User "${a.user}" cannot ${a.verb} resource "${full}" in API group "${a.group}" ${scope}`,
      {
        ...(a.name !== undefined ? { name: a.name } : {}),
        ...(a.group ? { group: a.group } : {}),
        kind: a.resource,
      },
    ),
  );
}
