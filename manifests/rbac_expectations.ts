/**
 * The Kubernetes API calls the daemon makes, as one table: the single source
 * that the RBAC manifests are tested against (integration/manifests_test.ts), and
 * that a test of the running daemon can hold its recorded requests to (every
 * request the fake API server saw must be allowed by these rules, see
 * {@linkcode apiCallOf} and {@linkcode isAllowed}).
 *
 * @module
 */

/** A Kubernetes API verb as RBAC names it. */
export type ApiVerb = "get" | "list" | "watch" | "create" | "update" | "patch" | "delete";

/** Which pull strategy needs a rule; `all` for both. */
export type StrategyMode = "all" | "pod" | "cri";

/** The daemon's `--role`s; a rule lists those that make the call. */
export type DaemonRole = "all" | "aggregator" | "node";

/**
 * One RBAC rule the daemon needs. `cluster` rules go in the ClusterRole (any
 * namespace, or cluster-scoped objects); `namespace` rules in the Role of the
 * daemon's own namespace.
 */
export interface RequiredRule {
  /** `default-namespace`: a Role in the `default` namespace (Events about Nodes live there). */
  readonly scope: "cluster" | "namespace" | "default-namespace";
  /** `""` for the core group. */
  readonly apiGroup: string;
  readonly resource: string;
  readonly verbs: readonly ApiVerb[];
  readonly mode: StrategyMode;
  /** The roles that make the call (each role's install grants exactly its rules). */
  readonly roles: readonly DaemonRole[];
  /** The code that makes the call, and why. */
  readonly why: string;
  /** An opt-in feature whose kustomize component grants the rule (absent: the base grants it). */
  readonly feature?: "warm-up";
}

/** Every API call the daemon makes, by resource. Nothing else may be granted. */
export const REQUIRED_API_CALLS: readonly RequiredRule[] = [
  {
    scope: "cluster",
    apiGroup: "",
    resource: "configmaps",
    verbs: ["list", "watch"],
    mode: "all",
    roles: ["all", "aggregator"],
    why: "sources/configmap.ts reflects labelled ConfigMaps in every namespace",
  },
  {
    scope: "cluster",
    apiGroup: "argoproj.io",
    resource: "workflowtemplates",
    verbs: ["list", "watch"],
    mode: "all",
    roles: ["all", "aggregator"],
    why: "sources/argo.ts reflects WorkflowTemplates",
  },
  {
    scope: "cluster",
    apiGroup: "argoproj.io",
    resource: "clusterworkflowtemplates",
    verbs: ["list", "watch"],
    mode: "all",
    roles: ["all", "aggregator"],
    why: "sources/argo.ts reflects ClusterWorkflowTemplates",
  },
  {
    scope: "cluster",
    apiGroup: "argoproj.io",
    resource: "cronworkflows",
    verbs: ["list", "watch"],
    mode: "all",
    roles: ["all", "aggregator"],
    why: "sources/argo.ts reflects CronWorkflows",
  },
  {
    scope: "cluster",
    apiGroup: "",
    resource: "events",
    verbs: ["create", "patch"],
    mode: "all",
    roles: ["all", "aggregator"],
    why: "kube/events.ts records Events in the namespace of the object they are about",
  },
  {
    scope: "cluster",
    apiGroup: "",
    resource: "nodes",
    verbs: ["list", "watch"],
    mode: "all",
    roles: ["all", "node"],
    why: "the puller watches its own node by name: architecture and status.images",
  },
  {
    scope: "namespace",
    apiGroup: "",
    resource: "pods",
    verbs: ["create", "delete", "get", "list", "watch"],
    mode: "pod",
    roles: ["all", "node"],
    why: "the pod strategy creates, follows and deletes warden pull pods",
  },
  {
    scope: "namespace",
    apiGroup: "",
    resource: "secrets",
    verbs: ["get"],
    mode: "cri",
    roles: ["all", "node"],
    why: "the CRI strategy reads --image-pull-secret Secrets to pass credentials to the runtime",
  },
  {
    scope: "cluster",
    apiGroup: "",
    resource: "nodes",
    verbs: ["list", "watch"],
    mode: "all",
    roles: ["aggregator"],
    why:
      "ledger/ledger_feed.ts follows which nodes are ready: the candidates for each tag's canary",
  },
  {
    scope: "namespace",
    apiGroup: "",
    resource: "pods",
    verbs: ["list", "watch"],
    mode: "all",
    roles: ["aggregator"],
    why: "ledger/ledger_feed.ts reads the digest a tag resolved to from pull pods' imageID",
  },
  {
    scope: "namespace",
    apiGroup: "",
    resource: "events",
    verbs: ["list", "watch"],
    mode: "all",
    roles: ["aggregator"],
    why:
      "ledger/ledger_feed.ts reads the TagChecked Events canaries pulling through CRI record on their own pods",
  },
  {
    scope: "namespace",
    apiGroup: "coordination.k8s.io",
    resource: "leases",
    verbs: ["create", "get", "update"],
    mode: "all",
    roles: ["aggregator"],
    why: "election/leader_elector.ts reads, creates and renews the aggregator's Lease",
  },
  {
    scope: "namespace",
    apiGroup: "",
    resource: "configmaps",
    verbs: ["create", "delete", "list", "watch"],
    mode: "all",
    roles: ["aggregator"],
    why:
      "publication/publisher.ts watches the published set, writes each generation and deletes old ones",
  },
  {
    scope: "namespace",
    apiGroup: "",
    resource: "configmaps",
    verbs: ["list", "watch"],
    mode: "all",
    roles: ["node"],
    why: "publication/published_set_source.ts watches the published set by label",
  },
  {
    scope: "namespace",
    apiGroup: "coordination.k8s.io",
    resource: "leases",
    verbs: ["get"],
    mode: "all",
    roles: ["node"],
    why:
      "election/lease_liveness.ts reads the aggregator's Lease: the tag ledger counts only while it is renewed",
  },
  {
    scope: "namespace",
    apiGroup: "",
    resource: "events",
    verbs: ["create", "patch"],
    mode: "all",
    roles: ["node"],
    why: "puller/pull_events.ts records Events on the node daemon's own pod",
  },
  {
    scope: "cluster",
    apiGroup: "",
    resource: "nodes",
    verbs: ["get", "patch"],
    mode: "all",
    roles: ["all", "node"],
    feature: "warm-up",
    why:
      "warm/warm_up.ts reads its own Node's taints and removes the --startup-taint (JSON patch with a test op)",
  },
  {
    scope: "cluster",
    apiGroup: "",
    resource: "nodes/status",
    verbs: ["patch"],
    mode: "all",
    roles: ["all", "node"],
    feature: "warm-up",
    why: "warm/warm_up.ts keeps the ImagesPrePulled condition on its own Node",
  },
  {
    scope: "default-namespace",
    apiGroup: "",
    resource: "events",
    verbs: ["create", "patch"],
    mode: "all",
    roles: ["node"],
    feature: "warm-up",
    why:
      "warm/warm_up.ts: the NodeWarm Event on its Node (Events about Nodes live in default; role all has events cluster-wide)",
  },
];

/**
 * The rules one daemon role needs with one strategy: the shared ones plus
 * those of its strategy. The aggregator pulls nothing, so its strategy does
 * not matter.
 */
export function requiredRules(
  strategy: "pod" | "cri",
  role: DaemonRole = "all",
  features: readonly "warm-up"[] = [],
): RequiredRule[] {
  return REQUIRED_API_CALLS.filter((r) =>
    r.roles.includes(role) && (r.mode === "all" || r.mode === strategy) &&
    (r.feature === undefined || features.includes(r.feature))
  );
}

/** One request to the API server, in RBAC's terms. */
export interface ApiCall {
  readonly apiGroup: string;
  readonly resource: string;
  readonly verb: ApiVerb;
  /** The namespace in the path; undefined for cluster-wide or cluster-scoped requests. */
  readonly namespace?: string;
  /** The object's name, for requests about one object. */
  readonly name?: string;
}

/**
 * Classifies a request to the API server the way its authorizer does:
 * `GET /api/v1/namespaces/x/pods?watch=true` is `watch` on core `pods` in `x`.
 *
 * @throws {TypeError} for a path that is not a resource request (`/version`,
 * subresources are reported as `resource/subresource`).
 */
export function apiCallOf(method: string, url: string | URL): ApiCall {
  const parsed = new URL(url, "http://api.invalid");
  const parts = parsed.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  let rest: string[];
  let apiGroup: string;
  if (parts[0] === "api" && parts.length >= 3) {
    apiGroup = "";
    rest = parts.slice(2);
  } else if (parts[0] === "apis" && parts.length >= 4) {
    apiGroup = parts[1];
    rest = parts.slice(3);
  } else {
    throw new TypeError(`Cannot classify API request ${JSON.stringify(parsed.pathname)}`);
  }
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, subresource] = rest;
  if (!resource) {
    throw new TypeError(`Cannot classify API request ${JSON.stringify(parsed.pathname)}`);
  }
  const fullResource = subresource ? `${resource}/${subresource}` : resource;
  const named = name !== undefined;
  const verb = verbOf(method.toUpperCase(), named, parsed.searchParams.get("watch"));
  return { apiGroup, resource: fullResource, verb, namespace, name };
}

function verbOf(method: string, named: boolean, watch: string | null): ApiVerb {
  switch (method) {
    case "GET":
      if (watch === "true" || watch === "1") return "watch";
      return named ? "get" : "list";
    case "POST":
      return "create";
    case "PUT":
      return "update";
    case "PATCH":
      return "patch";
    case "DELETE":
      if (!named) {
        throw new TypeError("Cannot classify a collection delete: the daemon never makes one");
      }
      return "delete";
    default:
      throw new TypeError(`Cannot classify API request method ${JSON.stringify(method)}`);
  }
}

/** A rule as it appears in a Role or ClusterRole. */
export interface PolicyRule {
  readonly apiGroups?: readonly string[];
  readonly resources?: readonly string[];
  readonly verbs: readonly string[];
  readonly resourceNames?: readonly string[];
}

/** The rules of an install, split as the API server applies them. */
export interface InstalledRules {
  /** ClusterRole rules: apply in every namespace and to cluster-scoped objects. */
  readonly cluster: readonly PolicyRule[];
  /** Role rules: apply in {@linkcode InstalledRules.namespace} only. */
  readonly namespaced: readonly PolicyRule[];
  /** The daemon's namespace. */
  readonly namespace: string;
  /** Role rules in the `default` namespace (the warm-up component's, for Events on Nodes). */
  readonly defaultNamespace?: readonly PolicyRule[];
}

/** The rules a role's install grants, with the given opt-in features, as installed rules. */
export function installedRulesOf(
  strategy: "pod" | "cri",
  role: DaemonRole,
  namespace: string,
  features: readonly "warm-up"[] = [],
): InstalledRules {
  const rules = requiredRules(strategy, role, features);
  const policy = (scope: RequiredRule["scope"]) =>
    rules.filter((r) => r.scope === scope).map((r) => ({
      apiGroups: [r.apiGroup],
      resources: [r.resource],
      verbs: r.verbs,
    }));
  return {
    cluster: policy("cluster"),
    namespaced: policy("namespace"),
    namespace,
    defaultNamespace: policy("default-namespace"),
  };
}

function ruleMatches(rule: PolicyRule, call: ApiCall): boolean {
  const has = (list: readonly string[] | undefined, value: string) =>
    (list ?? []).includes(value) || (list ?? []).includes("*");
  // A rule limited to resourceNames covers only requests that name one of them.
  const names = rule.resourceNames ?? [];
  const nameOk = names.length === 0 || (call.name !== undefined && names.includes(call.name));
  return has(rule.apiGroups, call.apiGroup) && has(rule.resources, call.resource) &&
    has(rule.verbs, call.verb) && nameOk;
}

/** True when `rules` allow `call` (RBAC is additive: any matching rule allows it). */
export function isAllowed(rules: InstalledRules, call: ApiCall): boolean {
  if (rules.cluster.some((r) => ruleMatches(r, call))) return true;
  if (
    call.namespace === "default" && (rules.defaultNamespace ?? []).some((r) => ruleMatches(r, call))
  ) {
    return true;
  }
  return call.namespace === rules.namespace && rules.namespaced.some((r) => ruleMatches(r, call));
}
