import { assert, assertEquals, assertThrows } from "../testing/assert.ts";
import {
  DEFAULT_WARDEN_IMAGE,
  FLAGS,
  helpText,
  loadConfig,
  requireDaemonIdentity,
} from "./config.ts";

const noEnv = () => undefined;
const load = (args: string[], env: Record<string, string> = {}) =>
  loadConfig(args, (name) => env[name]).config;

Deno.test("loadConfig() applies the original's defaults", () => {
  const config = load([]);
  assertEquals(config.images, []);
  assertEquals(config.configmapSelector, "app.kubernetes.io/part-of=image-cache-daemon");
  assertEquals(config.resyncPeriodMs, 15 * 60_000);
  assertEquals(config.wardenImage, DEFAULT_WARDEN_IMAGE);
  assertEquals(config.watchArgoWorkflowTemplates, true);
  assertEquals(config.watchArgoClusterWorkflowTemplates, true);
  assertEquals(config.watchArgoCronWorkflows, true);
  assertEquals(config.watchConfigmaps, true);
  assertEquals(config.maxConcurrentPulls, 2);
  assertEquals(config.pullTimeoutMs, 10 * 60_000);
  assertEquals(config.pullBackoffMaxMs, 60 * 60_000);
  assertEquals(config.pullStrategy, "pod");
  assertEquals(config.criSocket, "/run/containerd/containerd.sock");
  assertEquals(config.metricsBindAddress, { hostname: "0.0.0.0", port: 8080 });
  // Safe defaults (README "Security"): /status on loopback only, secrets for
  // nobody but the operator's own origins, caps on.
  assertEquals(config.statusBindAddress, { hostname: "127.0.0.1", port: 8081 });
  assertEquals(config.trustedNamespaces, []);
  assertEquals(config.trustClusterWorkflowTemplates, false);
  assertEquals(config.allowedRepositories, []);
  assertEquals(config.maxImagesPerObject, 1_000);
  assertEquals(config.maxDesiredImages, 10_000);
  assertEquals(config.logLevel, "info");
  assertEquals(config.logFormat, "json");
  assertEquals(config.nodeName, undefined);
});

Deno.test("loadConfig() reads every flag form", async (t) => {
  const cases: [string[], Partial<Record<string, unknown>>][] = [
    [["--image", "alpine", "--image=nginx"], { images: ["alpine", "nginx"] }],
    [["--resync-period=1h30m"], { resyncPeriodMs: 5_400_000 }],
    [["--resync-period", "0"], { resyncPeriodMs: 0 }],
    [["--pull-timeout=1500ms"], { pullTimeoutMs: 1500 }],
    [["--watch-configmaps=false"], { watchConfigmaps: false }],
    [["--watch-argo-cron-workflows=false"], { watchArgoCronWorkflows: false }],
    [["--watch-argo-workflow-templates", "--watch-configmaps"], {
      watchArgoWorkflowTemplates: true,
      watchConfigmaps: true,
    }],
    [["--configmap-selector=team in (a,b),!skip"], { configmapSelector: "team in (a,b),!skip" }],
    [["--configmap-namespaces=a", "--configmap-namespaces", "b"], {
      configmapNamespaces: ["a", "b"],
    }],
    [["--max-concurrent-pulls=8"], { maxConcurrentPulls: 8 }],
    [["--pull-strategy=cri", "--cri-socket=/var/run/crio/crio.sock"], {
      pullStrategy: "cri",
      criSocket: "/var/run/crio/crio.sock",
    }],
    [["--metrics-bind-address=0"], { metricsBindAddress: undefined }],
    [["--metrics-bind-address=127.0.0.1:9090"], {
      metricsBindAddress: { hostname: "127.0.0.1", port: 9090 },
    }],
    [["--image-pull-secret=a", "--image-pull-secret=b"], { imagePullSecrets: ["a", "b"] }],
    [["--log-level=debug", "--log-format=text"], { logLevel: "debug", logFormat: "text" }],
    [["--node-name=n1", "--pod-name=p", "--pod-namespace=ns", "--pod-uid=u"], {
      nodeName: "n1",
      podName: "p",
      podNamespace: "ns",
      podUid: "u",
    }],
    [["--trusted-namespaces=platform", "--trust-cluster-workflow-templates"], {
      trustedNamespaces: ["platform"],
      trustClusterWorkflowTemplates: true,
    }],
    [["--allowed-repositories=docker.io/library/*", "--allowed-repositories=ghcr.io/acme/**"], {
      allowedRepositories: ["docker.io/library/*", "ghcr.io/acme/**"],
    }],
    [["--max-images-per-object=50", "--max-desired-images=500"], {
      maxImagesPerObject: 50,
      maxDesiredImages: 500,
    }],
    [["--status-bind-address=0"], { statusBindAddress: undefined }],
    [["--status-bind-address=:8081"], { statusBindAddress: { hostname: "0.0.0.0", port: 8081 } }],
    [["-h"], { help: true }],
    [["--version"], { version: true }],
  ];
  for (const [args, expected] of cases) {
    await t.step(args.join(" "), () => {
      const config = load(args) as unknown as Record<string, unknown>;
      for (const [key, value] of Object.entries(expected)) {
        assertEquals(config[key], value, key);
      }
    });
  }
});

Deno.test("loadConfig() falls back to the downward-API environment variables", () => {
  const env = { NODE_NAME: "node-1", POD_NAME: "icd-abc", POD_NAMESPACE: "icd", POD_UID: "uid-1" };
  const config = load([], env);
  assertEquals(
    [config.nodeName, config.podName, config.podNamespace, config.podUid],
    ["node-1", "icd-abc", "icd", "uid-1"],
  );
  assertEquals(load(["--node-name=flag-wins"], env).nodeName, "flag-wins");
});

Deno.test("loadConfig() rejects invalid values naming the flag, the value and the fix", async (t) => {
  const cases: [string[], string][] = [
    [
      ["--resync-period", "15 minutes"],
      '--resync-period "15 minutes": expected a Go duration such as 15m or 1h30m',
    ],
    [["--pull-timeout=0"], '--pull-timeout "0": must be greater than 0'],
    [["--pull-backoff-max=0s"], '--pull-backoff-max "0s": must be greater than 0, such as 1h'],
    [["--cri-socket="], '--cri-socket "": must not be empty'],
    [
      ["--image=alpine", "--image=Alpine"],
      '--image "Alpine": Cannot parse image reference "Alpine": repository name must be lowercase',
    ],
    [["--image={{inputs.parameters.image}}"], "templated, not resolvable"],
    [["--pull-backoff-max=soon"], '--pull-backoff-max "soon": expected a Go duration'],
    [["--resync-period=-5m"], '--resync-period "-5m": must not be negative'],
    [
      ["--max-concurrent-pulls=0"],
      '--max-concurrent-pulls "0": expected a whole number from 1 to 1000',
    ],
    [["--max-concurrent-pulls=two"], '--max-concurrent-pulls "two"'],
    [["--pull-strategy=docker"], '--pull-strategy "docker": expected pod or cri'],
    [["--log-level=loud"], '--log-level "loud": expected one of debug, info, warn, error'],
    [["--log-format=xml"], '--log-format "xml": expected json or text'],
    [["--metrics-bind-address=8080"], '--metrics-bind-address "8080": expected host:port'],
    [["--configmap-selector=a in (b"], '--configmap-selector "a in (b"'],
    [["--warden-image=Bad/Image"], '--warden-image "Bad/Image"'],
    [["--watch-configmaps=maybe"], '--watch-configmaps "maybe": expected true or false'],
    [["--watch-configmaps", "maybe"], '--watch-configmaps "maybe": is not true or false'],
    [["--pull-timeout=1000h"], '--pull-timeout "1000h": must be at most 596h31m23.647s'],
    [["--resync-period=99999999999999999999h"], '--resync-period "99999999999999999999h"'],
    [["--pull-backoff-max=720h"], "the longest a timer can wait"],
    [["--resync-period=1ns"], '--resync-period "1ns": must be at least 1s or 0'],
    [["--resync-period=999ms"], "each resync pulls every tag again"],
    [["--pull-timeout=500ms"], '--pull-timeout "500ms": must be at least 1s:'],
    [["--pull-backoff-max=1ms"], '--pull-backoff-max "1ms": must be at least 1s'],
    [["--publish-interval=10ms"], '--publish-interval "10ms": must be at least 50ms: each write'],
    [["--publish-interval=0"], '--publish-interval "0": must be greater than 0, such as 1s'],
    [["--max-images-per-object=0"], '--max-images-per-object "0": expected a whole number'],
    [["--max-desired-images=lots"], '--max-desired-images "lots"'],
    [["--allowed-repositories=/x/*"], '--allowed-repositories "/x/*"'],
    [["--status-bind-address=8081"], '--status-bind-address "8081": expected host:port'],
    [["--unknown"], "Unknown flag --unknown"],
    [["--image"], "--image: missing value"],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" "), () => {
      assertThrows(() => loadConfig(args, noEnv), TypeError, message);
    });
  }
});

Deno.test("loadConfig() reports every invalid value at once", () => {
  const error = assertThrows(
    () => loadConfig(["--resync-period=x", "--log-level=y"], noEnv),
    TypeError,
  );
  assertEquals(error.message.split("\n").length, 2);
});

Deno.test("loadConfig() returns a frozen config", () => {
  const { config } = loadConfig(["--image=a"], noEnv);
  assert(Object.isFrozen(config));
  assert(Object.isFrozen(config.images));
});

Deno.test("requireDaemonIdentity() names the missing flag and its downward-API source", () => {
  const error = assertThrows(() => requireDaemonIdentity(load([])), TypeError);
  assert(error.message.includes("--node-name is required"));
  assert(error.message.includes("NODE_NAME"));
  assert(error.message.includes("--pod-namespace is required"));
  requireDaemonIdentity(load(["--node-name=n", "--pod-namespace=ns"]));
});

Deno.test("helpText() lists every flag of the original and the additions", () => {
  const text = helpText();
  const original = [
    "--image",
    "--configmap-selector",
    "--node-name",
    "--pod-name",
    "--pod-namespace",
    "--pod-uid",
    "--resync-period",
    "--warden-image",
    "--watch-argo-workflow-templates",
    "--watch-argo-cluster-workflow-templates",
    "--watch-argo-cron-workflows",
    "--watch-configmaps",
    "-h, --help",
    "--kubeconfig",
    "--log-level",
    "--log-format",
    "--version",
  ];
  for (const flag of original) assert(text.includes(flag), flag);
  for (const spec of FLAGS) assert(text.includes(`--${spec.name}`), spec.name);
});

Deno.test("--startup-taint parses KEY[:EFFECT] and warm-up flags default to off and 10m", () => {
  const base = ["--node-name=n", "--pod-namespace=ns"];
  const plain = loadConfig(base).config;
  assertEquals(plain.startupTaint, undefined);
  assertEquals(plain.warmTimeoutMs, 600_000);
  assertEquals(plain.warmMaxConcurrentPulls, undefined);
  const set = loadConfig([
    ...base,
    "--startup-taint=startup-taint.cluster-autoscaler.kubernetes.io/images:NoSchedule",
    "--warm-timeout=2m",
    "--warm-max-concurrent-pulls=6",
  ]).config;
  assertEquals(set.startupTaint, {
    key: "startup-taint.cluster-autoscaler.kubernetes.io/images",
    effect: "NoSchedule",
  });
  assertEquals(set.warmTimeoutMs, 120_000);
  assertEquals(set.warmMaxConcurrentPulls, 6);
  assertEquals(loadConfig([...base, "--startup-taint=example.com/warming"]).config.startupTaint, {
    key: "example.com/warming",
  });
});

Deno.test("bad warm-up flags and warm-up flags on an aggregator are refused, naming the flag", () => {
  assertThrows(
    () => loadConfig(["--startup-taint=example.com/warming:Sometimes"]),
    TypeError,
    `--startup-taint "example.com/warming:Sometimes": taint effect "Sometimes"`,
  );
  assertThrows(
    () => loadConfig(["--startup-taint=not a key"]),
    TypeError,
    "is not a qualified name",
  );
  assertThrows(
    () => loadConfig(["--warm-max-concurrent-pulls=0"]),
    TypeError,
    "--warm-max-concurrent-pulls",
  );
  assertThrows(
    () => loadConfig(["--role=aggregator", "--startup-taint=example.com/warming"]),
    TypeError,
    "--startup-taint: warm-up runs on the nodes",
  );
});

Deno.test("--role=node refuses the flags only the aggregator uses, naming each, and keeps those a node applies", () => {
  assertThrows(
    () =>
      loadConfig([
        "--role=node",
        "--configmap-namespaces=apps",
        "--trusted-namespaces=platform",
        "--publish-interval=2s",
      ]),
    TypeError,
    "--configmap-namespaces, --trusted-namespaces, --publish-interval: the sources and the election run on the aggregator",
  );
  assertThrows(
    () => loadConfig(["--role=node", "--watch-argo-cron-workflows=false"]),
    TypeError,
    "--watch-argo-cron-workflows:",
  );
  // What a node does apply: its own images, the repositories it accepts, the set's cap, the Lease it reads.
  const { config } = loadConfig([
    "--role=node",
    "--image=alpine:3.20",
    "--allowed-repositories=docker.io/library/*",
    "--max-desired-images=500",
    "--leader-elect-lease-name=my-lease",
  ]);
  assertEquals(config.role, "node");
  assertEquals(config.leaderElectLeaseName, "my-lease");
  // The same flags are fine with the other roles.
  assertEquals(loadConfig(["--configmap-namespaces=apps"]).config.role, "all");
});
