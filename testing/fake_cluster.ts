/**
 * `deno task fake-cluster`: runs the fake API server standalone with a few
 * simulated nodes, writes a kubeconfig, prints how to point the daemon and
 * kubectl at it, and serves until Ctrl-C.
 *
 * @module
 */
import { type FlagSpec, formatHelp, parseBool, parseFlags } from "../config/flags.ts";
import { createLogger } from "../log/logger.ts";
import { startFakeApiServer } from "./fake_apiserver/mod.ts";

/** The namespace the daemon's own (simulated) pods live in. */
export const DAEMON_NAMESPACE = "image-cache-daemon";

const FLAGS: readonly FlagSpec[] = [
  {
    name: "kubeconfig",
    type: "string",
    default: "./fake-cluster.kubeconfig",
    metavar: "path",
    help: "Where to write the kubeconfig",
  },
  {
    name: "nodes",
    type: "string",
    default: "3",
    metavar: "n",
    help: "Number of nodes (node-1 … node-n)",
  },
  {
    name: "port",
    type: "string",
    default: "0",
    metavar: "port",
    help: "Port to listen on (0 = any free port)",
  },
  {
    name: "tls",
    type: "bool",
    default: "false",
    help: "Serve HTTPS with a throwaway CA in the kubeconfig",
  },
  { name: "argo", type: "bool", default: "true", help: "Install the Argo Workflows resources" },
  { name: "help", short: "h", type: "bool", help: "Print this help and exit" },
];

function write(text: string): void {
  const bytes = new TextEncoder().encode(text);
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

function positiveInteger(flag: string, raw: string, min: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    throw new RangeError(
      `Invalid value "${raw}" for --${flag}: expected a whole number of at least ${min}`,
    );
  }
  return n;
}

/** The repository root, where deno.json and main.ts are. */
const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/**
 * What the fake cluster prints: commands that run as printed, from any
 * directory, on a machine with only Node.js (Deno through npx, at the version
 * running this).
 */
export function banner(options: {
  url: string;
  nodes: readonly string[];
  argo: boolean;
  kubeconfig: string;
  pod: { name: string; uid: string };
}): string {
  const { kubeconfig, pod } = options;
  const deno = `npx -y deno@${Deno.version.deno}`;
  return [
    `Fake cluster at ${options.url} with nodes ${options.nodes.join(", ")}${
      options.argo ? " and the Argo resources" : ""
    }.`,
    `Kubeconfig: ${kubeconfig}`,
    "",
    "kubectl:",
    `  kubectl --kubeconfig ${kubeconfig} get nodes,pods -A`,
    `  kubectl --kubeconfig ${kubeconfig} apply -f <manifest.yaml>`,
    "",
    "The daemon, as if it ran on node-1, under its production permissions plus reading this kubeconfig:",
    `  ${deno} run -P=daemon --config ${ROOT}/deno.json --allow-read=${kubeconfig} \\`,
    `    ${ROOT}/main.ts --kubeconfig ${kubeconfig} --node-name node-1 \\`,
    `    --pod-name ${pod.name} --pod-namespace ${DAEMON_NAMESPACE} --pod-uid ${pod.uid}`,
    "It serves /metrics on 0.0.0.0:8080. Ctrl-C stops it, and so does stopping npx (kill <npx pid>).",
    "",
    "Press Ctrl-C to stop the fake cluster.",
    "",
  ].join("\n");
}

/** Runs the fake cluster until SIGINT/SIGTERM. */
export async function main(args: readonly string[]): Promise<number> {
  const log = createLogger({ format: "text" });
  let flags: Record<string, string | string[]>;
  try {
    flags = parseFlags(args, FLAGS).flags;
  } catch (error) {
    log.error("Invalid arguments", { error });
    return 2;
  }
  if (flags.help !== undefined && parseBool(String(flags.help))) {
    write(formatHelp("deno task fake-cluster [flags]", FLAGS));
    return 0;
  }
  const kubeconfigPath = String(flags.kubeconfig ?? "./fake-cluster.kubeconfig");
  let nodeCount: number;
  let port: number;
  try {
    nodeCount = positiveInteger("nodes", String(flags.nodes ?? "3"), 1);
    port = positiveInteger("port", String(flags.port ?? "0"), 0);
  } catch (error) {
    log.error("Invalid arguments", { error });
    return 2;
  }
  const nodes = Array.from({ length: nodeCount }, (_, i) => `node-${i + 1}`);
  const server = await startFakeApiServer({
    nodes,
    port,
    tls: parseBool(String(flags.tls ?? "false")) ?? false,
    argoInstalled: parseBool(String(flags.argo ?? "true")) ?? true,
    namespaces: ["default", "kube-system", "kube-public", "kube-node-lease", DAEMON_NAMESPACE],
    logger: log,
  });
  // One running daemon pod per node, so a daemon started by hand has a pod to own its
  // warden pods (its --pod-name/--pod-uid).
  const daemonPods = nodes.map((node) =>
    server.create("pods", {
      metadata: {
        name: `image-cache-daemon-${node}`,
        namespace: DAEMON_NAMESPACE,
        labels: { "app.kubernetes.io/name": "image-cache-daemon" },
      },
      spec: {
        nodeName: node,
        containers: [{
          name: "daemon",
          image: "image-cache-daemon:dev",
          imagePullPolicy: "IfNotPresent",
        }],
      },
    })
  );
  await Deno.writeTextFile(kubeconfigPath, server.kubeconfigYaml(), { mode: 0o600 });
  const absolute = await Deno.realPath(kubeconfigPath);
  const first = daemonPods[0];
  write(
    banner({
      url: server.url,
      nodes,
      argo: parseBool(String(flags.argo ?? "true")) ?? true,
      kubeconfig: absolute,
      pod: { name: first.metadata.name!, uid: first.metadata.uid! },
    }),
  );
  const stop = Promise.withResolvers<void>();
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const onSignal = () => stop.resolve();
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);
  await stop.promise;
  for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
  await server.close();
  write("Fake cluster stopped.\n");
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
