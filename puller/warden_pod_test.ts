import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { labelMatcher } from "../kube/label_selector.ts";
import { restrictedViolations } from "../testing/restricted_profile.ts";
import {
  IMAGE_ANNOTATION,
  IMAGE_HASH_LABEL,
  imageHash,
  newWardenPod,
  NODE_LABEL,
  nodeLabelValue,
  PART_OF_LABEL,
  WARDEN_BINARY,
  WARDEN_MOUNT_PATH,
  type WardenPodOptions,
  wardenPodSelector,
} from "./warden_pod.ts";

const TAG = "docker.io/library/alpine:3.19";
const DIGEST_REF = `docker.io/library/nginx@sha256:${"b".repeat(64)}`;
const OPTIONS: WardenPodOptions = {
  node: "worker-1",
  namespace: "image-cache",
  wardenImage: "ghcr.io/example/warden:v1",
  owner: { name: "image-cache-daemon-x7k2p", uid: "0b6c1a8e-1111-2222-3333-444455556666" },
};
const LABEL_VALUE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$/;

Deno.test("newWardenPod() passes the Pod Security restricted profile", async (t) => {
  const cases = [
    { name: "tag", ref: TAG },
    { name: "digest", ref: DIGEST_REF },
    {
      name: "every option",
      ref: TAG,
      options: {
        imagePullSecrets: ["regcred"],
        tolerations: [{ operator: "Exists" }],
        priorityClassName: "low",
      },
    },
  ];
  for (const { name, ref, options } of cases) {
    await t.step(name, () => {
      assertEquals(restrictedViolations(newWardenPod(ref, { ...OPTIONS, ...options })), []);
    });
  }
});

Deno.test("newWardenPod() pins the pod to the node and names it after the image", () => {
  const pod = newWardenPod(TAG, OPTIONS);
  assertEquals(pod.apiVersion, "v1");
  assertEquals(pod.kind, "Pod");
  assertEquals(pod.spec?.nodeName, "worker-1");
  assertEquals(pod.metadata?.namespace, "image-cache");
  assertEquals(pod.metadata?.name, undefined);
  assertEquals(pod.metadata?.generateName, `image-cache-alpine-${imageHash(TAG)}-`);
  assertEquals(pod.metadata?.annotations, { [IMAGE_ANNOTATION]: TAG });
  assertEquals(pod.metadata?.labels, {
    "app.kubernetes.io/part-of": "image-cache-daemon",
    "app.kubernetes.io/managed-by": "image-cache-daemon",
    [NODE_LABEL]: "worker-1",
    [IMAGE_HASH_LABEL]: imageHash(TAG),
  });
  assertEquals(pod.spec?.nodeSelector, undefined);
});

Deno.test("newWardenPod() keeps generated names short and DNS-safe", async (t) => {
  const cases = [
    {
      ref: "registry.example.com:5000/Team_X/very.long.repository-name.here:v1",
      hint: "very-long-repository",
    },
    { ref: `docker.io/library/nginx:1.27@sha256:${"c".repeat(64)}`, hint: "nginx" },
    { ref: "localhost:5000/app__x", hint: "app-x" },
  ];
  for (const { ref, hint } of cases) {
    await t.step(ref, () => {
      const generateName = newWardenPod(ref, OPTIONS).metadata!.generateName!;
      assertEquals(generateName, `image-cache-${hint}-${imageHash(ref)}-`);
      assertMatch(generateName, /^[a-z0-9]([a-z0-9-]*[a-z0-9])?-$/);
      assert(generateName.length + 5 <= 63);
    });
  }
});

Deno.test("newWardenPod() owns the pod by the daemon pod without blocking its deletion", () => {
  assertEquals(newWardenPod(TAG, OPTIONS).metadata?.ownerReferences, [{
    apiVersion: "v1",
    kind: "Pod",
    name: "image-cache-daemon-x7k2p",
    uid: "0b6c1a8e-1111-2222-3333-444455556666",
    controller: true,
    blockOwnerDeletion: false,
  }]);
  assertEquals(
    newWardenPod(TAG, { ...OPTIONS, owner: undefined }).metadata?.ownerReferences,
    undefined,
  );
});

Deno.test("newWardenPod() runs the warden binary from the init container's emptyDir", () => {
  const spec = newWardenPod(TAG, OPTIONS).spec!;
  assertEquals(spec.volumes, [{ name: "warden", emptyDir: {} }]);
  const [warden] = spec.initContainers!;
  assertEquals(spec.initContainers!.length, 1);
  assertEquals(warden.name, "warden");
  assertEquals(warden.image, "ghcr.io/example/warden:v1");
  assertEquals(warden.command, undefined);
  assertEquals(warden.args, undefined);
  assertEquals(warden.volumeMounts, [{ name: "warden", mountPath: WARDEN_MOUNT_PATH }]);
  const [main] = spec.containers;
  assertEquals(spec.containers.length, 1);
  assertEquals(main.name, "main");
  assertEquals(main.image, TAG);
  assertEquals(main.command, [`${WARDEN_MOUNT_PATH}/${WARDEN_BINARY}`]);
  assertEquals(main.command, ["/var/run/image-cache-daemon/warden"]);
  assertEquals(main.volumeMounts, [{
    name: "warden",
    mountPath: WARDEN_MOUNT_PATH,
    readOnly: true,
  }]);
});

Deno.test("newWardenPod() pulls tags always and digests only when absent", async (t) => {
  const cases = [
    { ref: TAG, policy: "Always" },
    { ref: DIGEST_REF, policy: "IfNotPresent" },
    { ref: `docker.io/library/nginx:1.27@sha256:${"c".repeat(64)}`, policy: "IfNotPresent" },
  ];
  for (const { ref, policy } of cases) {
    await t.step(`${policy} for ${ref}`, () => {
      assertEquals(newWardenPod(ref, OPTIONS).spec!.containers[0].imagePullPolicy, policy);
    });
  }
});

Deno.test("newWardenPod() gives the image no credentials, no restarts and tiny resources", () => {
  const spec = newWardenPod(TAG, OPTIONS).spec!;
  assertEquals(spec.restartPolicy, "Never");
  assertEquals(spec.automountServiceAccountToken, false);
  assertEquals(spec.enableServiceLinks, false);
  assertEquals(spec.terminationGracePeriodSeconds, 0);
  assertEquals(spec.securityContext, {
    runAsNonRoot: true,
    runAsUser: 65532,
    runAsGroup: 65532,
    seccompProfile: { type: "RuntimeDefault" },
  });
  for (const container of [...spec.initContainers!, ...spec.containers]) {
    assertEquals(container.securityContext?.allowPrivilegeEscalation, false);
    assertEquals(container.securityContext?.readOnlyRootFilesystem, true);
    assertEquals(container.securityContext?.capabilities, { drop: ["ALL"] });
    assertEquals(container.resources, {
      requests: { cpu: "1m", memory: "8Mi" },
      limits: { cpu: "100m", memory: "32Mi" },
    });
  }
  assertEquals(spec.imagePullSecrets, undefined);
  assertEquals(spec.tolerations, undefined);
  assertEquals(spec.priorityClassName, undefined);
});

Deno.test("newWardenPod() sets pull secrets, copied tolerations and the priority class", () => {
  const tolerations = [
    { key: "dedicated", operator: "Equal", value: "gpu", effect: "NoSchedule" },
    { key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute" },
  ];
  const spec = newWardenPod(TAG, {
    ...OPTIONS,
    imagePullSecrets: ["regcred", "ghcr"],
    tolerations,
    priorityClassName: "image-cache-low",
  }).spec!;
  assertEquals(spec.imagePullSecrets, [{ name: "regcred" }, { name: "ghcr" }]);
  assertEquals(spec.tolerations, tolerations);
  assert(spec.tolerations !== tolerations, "tolerations are copied, not shared");
  spec.tolerations![0].value = "changed";
  assertEquals(tolerations[0].value, "gpu");
  assertEquals(spec.priorityClassName, "image-cache-low");
});

Deno.test("imageHash() is short, stable and label-safe", () => {
  const hash = imageHash(TAG);
  assertMatch(hash, /^[0-9a-f]{16}$/);
  assertEquals(imageHash(TAG), hash);
  assert(imageHash(DIGEST_REF) !== hash);
  // The first 16 hex digits of SHA-256("docker.io/library/alpine:3.19").
  assertEquals(hash, "2e41168061e75f7c");
});

Deno.test("nodeLabelValue() keeps short names and shortens long ones to distinct label values", async (t) => {
  const long = "ip-10-0-0-1.eu-west-1.compute.internal." + "x".repeat(200);
  const cases = [
    { node: "worker-1", expected: "worker-1" },
    { node: "a".repeat(63), expected: "a".repeat(63) },
    { node: long },
    { node: long.slice(0, 45) + "." + "y".repeat(100) },
  ];
  for (const { node, expected } of cases) {
    await t.step(node.slice(0, 40), () => {
      const value = nodeLabelValue(node);
      if (expected !== undefined) assertEquals(value, expected);
      assert(value.length <= 63);
      assertMatch(value, LABEL_VALUE);
    });
  }
  assert(nodeLabelValue(long + "a") !== nodeLabelValue(long + "b"));
});

Deno.test("wardenPodSelector() matches this node's pull pods and nothing else", () => {
  const selector = wardenPodSelector("worker-1");
  assertEquals(
    selector,
    "app.kubernetes.io/part-of=image-cache-daemon,app.kubernetes.io/managed-by=image-cache-daemon," +
      "image-cache-daemon/node=worker-1",
  );
  const labels = newWardenPod(TAG, OPTIONS).metadata!.labels!;
  const matches = (node: string, podLabels: Record<string, string>) =>
    labelMatcher(wardenPodSelector(node))(podLabels);
  assert(matches("worker-1", labels));
  assert(!matches("worker-2", labels));
  // The daemon's own pods may carry part-of; the selector must not match them.
  assert(!matches("worker-1", { [PART_OF_LABEL]: "image-cache-daemon" }));
});
