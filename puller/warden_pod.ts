/**
 * The warden pod: one short-lived pod per (image, node) whose only job is to
 * make the kubelet pull the image. Pure manifest builder, no I/O.
 *
 * The contract with the warden image (kept from the original project so its
 * warden image still works): the warden image's own entrypoint copies a
 * static, do-nothing binary to `WARDEN_MOUNT_PATH/WARDEN_BINARY`
 * (`/var/run/image-cache-daemon/warden`) and exits 0. The pod runs the warden
 * image as its init container without overriding its command, shares that
 * path with the main container through an `emptyDir`, and the main container
 * (the image to pull) runs the copied binary instead of its own entrypoint, so
 * it exits 0 at once whatever the image holds, with no shell needed.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { V1Pod, V1SecurityContext, V1Toleration } from "@kubernetes/client-node";
import { isDigestPinned } from "../images/reference.ts";

/** Where the `emptyDir` holding the warden binary is mounted in both containers. */
export const WARDEN_MOUNT_PATH = "/var/run/image-cache-daemon";
/** File name of the binary the warden image copies into {@linkcode WARDEN_MOUNT_PATH}. */
export const WARDEN_BINARY = "warden";
/** Path the main container runs. */
export const WARDEN_COMMAND = `${WARDEN_MOUNT_PATH}/${WARDEN_BINARY}`;

/** Recommended label naming the application the pod is part of. */
export const PART_OF_LABEL = "app.kubernetes.io/part-of";
/** Value of {@linkcode PART_OF_LABEL}. */
const PART_OF_VALUE = "image-cache-daemon";
/** Recommended label naming the tool that manages the pod. */
const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
/** Value of {@linkcode MANAGED_BY_LABEL}. */
const MANAGED_BY_VALUE = "image-cache-daemon";
/** Label carrying the node a pull pod runs on (see {@linkcode nodeLabelValue}). */
export const NODE_LABEL = "image-cache-daemon/node";
/** Label carrying {@linkcode imageHash} of the image a pull pod pulls. */
export const IMAGE_HASH_LABEL = "image-cache-daemon/image-hash";
/** Annotation carrying the full image reference a pull pod pulls. */
export const IMAGE_ANNOTATION = "image-cache-daemon/image";
/** Name of the init container that provides the warden binary. */
const WARDEN_CONTAINER = "warden";
/** Name of the container that runs the image to pull. */
const MAIN_CONTAINER = "main";
/** Fixed non-root user and group the pull pod runs as (`nonroot` in distroless images). */
const WARDEN_UID = 65532;

const MAX_LABEL_VALUE = 63;
const HASH_LENGTH = 16;

function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * A short, stable, label-safe hash of an image reference: the first 16 hex
 * digits of its SHA-256. Pass the normalised reference so that `alpine` and
 * `docker.io/library/alpine:latest` hash alike.
 */
export function imageHash(ref: string): string {
  return sha256Hex(ref).slice(0, HASH_LENGTH);
}

/**
 * The value of {@linkcode NODE_LABEL} for a node. Node names may be 253
 * characters, label values only 63: a name that fits is used as is (readable
 * in `kubectl get pods -L`); a longer one keeps its first 46 characters and
 * ends in a hash of the whole name, so distinct nodes stay distinct.
 */
export function nodeLabelValue(node: string): string {
  if (node.length <= MAX_LABEL_VALUE) return node;
  const suffix = sha256Hex(node).slice(0, HASH_LENGTH);
  // Label values must start and end with an alphanumeric character.
  const prefix = node.slice(0, MAX_LABEL_VALUE - HASH_LENGTH - 1).replace(/[^A-Za-z0-9]+$/, "");
  return `${prefix}-${suffix}`;
}

/**
 * The label selector of every node's pull pods (the aggregator's tag ledger
 * reads them): only pods that carry an image hash, never the daemon's own.
 */
export function allWardenPodsSelector(): string {
  return `${PART_OF_LABEL}=${PART_OF_VALUE},${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${IMAGE_HASH_LABEL}`;
}

/**
 * The label selector for this node's pull pods.
 *
 * It requires the node label, not only `part-of`: the daemon's own pods may
 * well carry `app.kubernetes.io/part-of=image-cache-daemon` too, and a cleanup
 * that listed by `part-of` alone would delete them. Pair it with
 * `fieldSelector=spec.nodeName=<node>` when listing or watching.
 */
export function wardenPodSelector(node: string): string {
  return [
    `${PART_OF_LABEL}=${PART_OF_VALUE}`,
    `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`,
    `${NODE_LABEL}=${nodeLabelValue(node)}`,
  ].join(",");
}

/** Options for {@linkcode newWardenPod}. */
export interface WardenPodOptions {
  /** The node the pod must run on (`--node-name`). */
  node: string;
  /** The daemon's namespace, where pull pods live (`--pod-namespace`). */
  namespace: string;
  /** The warden image (`--warden-image`). */
  wardenImage: string;
  /**
   * The daemon's own pod (`--pod-name`, `--pod-uid`), set as owner so the
   * garbage collector removes stray pull pods when the daemon pod goes.
   * Omitted when unknown (e.g. running outside the cluster).
   */
  owner?: { name: string; uid: string };
  /** Secrets in `namespace` for pulling from private registries (`--image-pull-secret`). */
  imagePullSecrets?: readonly string[];
  /** Tolerations, copied from the daemon's own pod. */
  tolerations?: readonly V1Toleration[];
  /** PriorityClass for the pod (`--pull-priority-class`). */
  priorityClassName?: string;
}

/**
 * A readable, DNS-safe part of the image name for `generateName`: the last
 * path component, lowercased, at most 20 characters.
 */
function nameHint(ref: string): string {
  const withoutDigest = ref.split("@")[0];
  const lastSlash = withoutDigest.lastIndexOf("/");
  const colon = withoutDigest.lastIndexOf(":");
  const repo = colon > lastSlash ? withoutDigest.slice(lastSlash + 1, colon) : withoutDigest.slice(
    lastSlash + 1,
  );
  return repo.toLowerCase().replace(/[^a-z0-9]+/g, "-").slice(0, 20).replace(/^-+|-+$/g, "");
}

/** Container security context that passes the Pod Security "restricted" profile. */
function restrictedContainerSecurity(): V1SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ["ALL"] },
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    runAsUser: WARDEN_UID,
    runAsGroup: WARDEN_UID,
  };
}

/**
 * Resources for both containers. Both only start a static binary that copies
 * a file or exits, so requests are tiny (the kubelet still admits the pod
 * against the node's allocatable even though `nodeName` skips the scheduler,
 * and a busy node must not refuse a pull for want of room). Limits exist for
 * namespaces whose ResourceQuota demands them; memory stays well above the
 * few MiB the runtime's container init needs inside the cgroup, below which
 * containers fail to start with an OOM kill.
 */
const RESOURCES = {
  requests: { cpu: "1m", memory: "8Mi" },
  limits: { cpu: "100m", memory: "32Mi" },
};

/**
 * Builds the pod that pulls `ref` on `options.node`.
 *
 * - `generateName: image-cache-<name>-<hash>-` in the daemon's namespace, and
 *   `spec.nodeName` set, so the scheduler is skipped and the pod can only run
 *   on this node. No `kubernetes.io/os` node selector: the daemon runs on
 *   Linux nodes only, `nodeName` already pins the node, and the kubelet would
 *   only reject the pod if a selector ever disagreed.
 * - Labels from {@linkcode wardenPodSelector} plus {@linkcode IMAGE_HASH_LABEL};
 *   the full reference in the {@linkcode IMAGE_ANNOTATION} annotation.
 * - Owner: the daemon's pod, with `controller: true` (the daemon pod really
 *   creates and deletes these pods, and a controller reference stops any
 *   other controller, such as a DaemonSet whose selector happened to match,
 *   from adopting them) and `blockOwnerDeletion: false` (deleting the daemon
 *   pod must not wait for its pull pods, and setting it would need extra
 *   RBAC on the owner).
 * - Init container `warden` runs the warden image's own entrypoint (see the
 *   module docs for the contract); container `main` runs the image to pull
 *   with {@linkcode WARDEN_COMMAND}. `imagePullPolicy` is `IfNotPresent` for
 *   digest-pinned references (content cannot change, so a present image
 *   costs nothing) and `Always` for tags (tags move; resync must see it).
 * - `restartPolicy: Never`, `terminationGracePeriodSeconds: 0` (nothing to
 *   shut down cleanly), no service-account token and no service links (the
 *   image to pull is arbitrary code and gets no credentials or cluster
 *   addresses), tiny resources, and a security context that passes the Pod
 *   Security "restricted" profile: non-root with a fixed uid/gid, no
 *   privilege escalation, all capabilities dropped, RuntimeDefault seccomp,
 *   read-only root file system.
 * - Tolerations copied from the daemon's pod: `nodeName` bypasses `NoSchedule`
 *   taints, but `NoExecute` taints would evict a pod without them.
 */
export function newWardenPod(ref: string, options: WardenPodOptions): V1Pod {
  const hash = imageHash(ref);
  const hint = nameHint(ref);
  const pod: V1Pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      generateName: hint === "" ? `image-cache-${hash}-` : `image-cache-${hint}-${hash}-`,
      namespace: options.namespace,
      labels: {
        [PART_OF_LABEL]: PART_OF_VALUE,
        [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
        [NODE_LABEL]: nodeLabelValue(options.node),
        [IMAGE_HASH_LABEL]: hash,
      },
      annotations: { [IMAGE_ANNOTATION]: ref },
    },
    spec: {
      nodeName: options.node,
      restartPolicy: "Never",
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 0,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: WARDEN_UID,
        runAsGroup: WARDEN_UID,
        seccompProfile: { type: "RuntimeDefault" },
      },
      volumes: [{ name: "warden", emptyDir: {} }],
      initContainers: [{
        name: WARDEN_CONTAINER,
        image: options.wardenImage,
        imagePullPolicy: "IfNotPresent",
        volumeMounts: [{ name: "warden", mountPath: WARDEN_MOUNT_PATH }],
        resources: structuredClone(RESOURCES),
        securityContext: restrictedContainerSecurity(),
      }],
      containers: [{
        name: MAIN_CONTAINER,
        image: ref,
        imagePullPolicy: isDigestPinned(ref) ? "IfNotPresent" : "Always",
        command: [WARDEN_COMMAND],
        volumeMounts: [{ name: "warden", mountPath: WARDEN_MOUNT_PATH, readOnly: true }],
        resources: structuredClone(RESOURCES),
        securityContext: restrictedContainerSecurity(),
      }],
    },
  };
  if (options.owner !== undefined) {
    pod.metadata!.ownerReferences = [{
      apiVersion: "v1",
      kind: "Pod",
      name: options.owner.name,
      uid: options.owner.uid,
      controller: true,
      blockOwnerDeletion: false,
    }];
  }
  if (options.imagePullSecrets !== undefined && options.imagePullSecrets.length > 0) {
    pod.spec!.imagePullSecrets = options.imagePullSecrets.map((name) => ({ name }));
  }
  if (options.tolerations !== undefined && options.tolerations.length > 0) {
    pod.spec!.tolerations = structuredClone([...options.tolerations]);
  }
  if (options.priorityClassName !== undefined) {
    pod.spec!.priorityClassName = options.priorityClassName;
  }
  return pod;
}
