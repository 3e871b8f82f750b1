/**
 * The kubernetes-models classes the manifest tests validate against (and
 * @kubernetes-models/prometheus-operator's, for the monitoring components),
 * loaded without the one warning their loading prints.
 *
 * Why: kubernetes-models' validator pulls in ajv-formats-draft2019, whose
 * `require("punycode")` resolves to Node's deprecated built-in and prints
 * DEP0040 on every run. That is a dependency's choice we cannot change from
 * here and says nothing about this project; deprecation warnings are off only
 * while these modules load, and on again for everything else.
 *
 * @module
 */
import process from "node:process";

const before = process.noDeprecation;
process.noDeprecation = true;
let models;
try {
  models = await Promise.all([
    import("kubernetes-models/apps/v1/DaemonSet"),
    import("kubernetes-models/apps/v1/Deployment"),
    import("kubernetes-models/policy/v1/PodDisruptionBudget"),
    import("kubernetes-models/v1/Namespace"),
    import("kubernetes-models/v1/ServiceAccount"),
    import("kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole"),
    import("kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding"),
    import("kubernetes-models/rbac.authorization.k8s.io/v1/Role"),
    import("kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding"),
    import("kubernetes-models/v1/ConfigMap"),
    import("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor"),
    import("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule"),
  ]);
} finally {
  process.noDeprecation = before;
}
const [
  daemonSet,
  deployment,
  podDisruptionBudget,
  namespace,
  serviceAccount,
  clusterRole,
  clusterRoleBinding,
  role,
  roleBinding,
  configMap,
  podMonitor,
  prometheusRule,
] = models;

/** `apps/v1` DaemonSet. */
export const DaemonSet = daemonSet.DaemonSet;
/** `apps/v1` Deployment. */
export const Deployment = deployment.Deployment;
/** `policy/v1` PodDisruptionBudget. */
export const PodDisruptionBudget = podDisruptionBudget.PodDisruptionBudget;
/** `v1` Namespace. */
export const Namespace = namespace.Namespace;
/** `v1` ServiceAccount. */
export const ServiceAccount = serviceAccount.ServiceAccount;
/** `rbac.authorization.k8s.io/v1` ClusterRole. */
export const ClusterRole = clusterRole.ClusterRole;
/** `rbac.authorization.k8s.io/v1` ClusterRoleBinding. */
export const ClusterRoleBinding = clusterRoleBinding.ClusterRoleBinding;
/** `rbac.authorization.k8s.io/v1` Role. */
export const Role = role.Role;
/** `rbac.authorization.k8s.io/v1` RoleBinding. */
export const RoleBinding = roleBinding.RoleBinding;
/** `v1` ConfigMap. */
export const ConfigMap = configMap.ConfigMap;
/** `monitoring.coreos.com/v1` PodMonitor (Prometheus Operator). */
export const PodMonitor = podMonitor.PodMonitor;
/** `monitoring.coreos.com/v1` PrometheusRule (Prometheus Operator). */
export const PrometheusRule = prometheusRule.PrometheusRule;
