/**
 * Test helpers for a KubeConfig loaded as the daemon loads one: from a
 * kubeconfig file of a TLS fake API server, with its pooled connections.
 *
 * @module
 */
import { type KubeConfig, RequestContext } from "@kubernetes/client-node";
import { loadKubeConfig } from "../kube/client.ts";
import { type FakeApiServer, startFakeApiServer } from "./fake_apiserver/mod.ts";

/** The dispatcher (connection pool) `kc` sends a request to `url` on. */
export async function dispatcherOf(kc: KubeConfig, url: string): Promise<unknown> {
  const ctx = new RequestContext(url, "GET" as never);
  await kc.applySecurityAuthentication(ctx);
  return ctx.getDispatcher();
}

/** Runs `fn` with a TLS fake API server and a KubeConfig loaded from its kubeconfig file. */
export async function withKubeconfigFile(
  fn: (server: FakeApiServer, kc: KubeConfig) => Promise<void>,
): Promise<void> {
  const server = await startFakeApiServer({ tls: true });
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/kubeconfig`;
    await Deno.writeTextFile(path, server.kubeconfigYaml());
    await fn(server, loadKubeConfig({ kubeconfig: path }));
  } finally {
    await Deno.remove(dir, { recursive: true });
    await server.close();
  }
}
