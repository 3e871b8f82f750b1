import { CoreV1Api, RequestContext } from "@kubernetes/client-node";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "../testing/assert.ts";
import { startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import {
  apiMessage,
  apiStatus,
  boundRequests,
  loadKubeConfig,
  retryAfterSeconds,
} from "./client.ts";

async function dispatcherOf(kc: ReturnType<typeof loadKubeConfig>, url: string) {
  const ctx = new RequestContext(url, "GET" as never);
  await kc.applySecurityAuthentication(ctx);
  return ctx.getDispatcher();
}

Deno.test("loadKubeConfig() reuses one connection pool for every request", async () => {
  const server = await startFakeApiServer({ tls: true });
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/kubeconfig`;
    await Deno.writeTextFile(path, server.kubeconfigYaml());
    const kc = loadKubeConfig({ kubeconfig: path });
    const first = await dispatcherOf(kc, `${server.url}/api/v1/pods`);
    const second = await dispatcherOf(kc, `${server.url}/api/v1/configmaps`);
    assert(first !== undefined);
    assert(first === second, "a new Agent (new TCP and TLS connection) per request");
  } finally {
    await Deno.remove(dir, { recursive: true });
    await server.close();
  }
});

Deno.test("loadKubeConfig() names the file and the fix when it cannot load", () => {
  assertThrows(
    () => loadKubeConfig({ kubeconfig: "/nonexistent/kubeconfig" }),
    TypeError,
    'Cannot load kubeconfig "/nonexistent/kubeconfig"',
  );
});

Deno.test("apiStatus(), apiMessage() and retryAfterSeconds() read client-node errors", () => {
  const error = Object.assign(new Error("HTTP-Code: 429\\nMessage: …"), {
    code: 429,
    body: JSON.stringify({ kind: "Status", message: "too many requests" }),
    headers: { "retry-after": "7" },
  });
  assertEquals(apiStatus(error), 429);
  assertEquals(apiMessage(error), "too many requests");
  assertEquals(retryAfterSeconds(error), 7);
  assertEquals(apiStatus(Object.assign(new Error("x"), { statusCode: 404 })), 404);
  assertMatch(apiMessage(new Error("plain\nmore")), /^plain$/);
  assertEquals(retryAfterSeconds(new Error("x")), undefined);
});

Deno.test("boundRequests() gives every API request a timeout, so a silent API server cannot hang a call", async () => {
  const server = await startFakeApiServer();
  try {
    const kc = boundRequests(server.kubeConfig(), 200);
    server.faults.setLatency(1_500);
    const started = Date.now();
    await assertRejects(() => kc.makeApiClient(CoreV1Api).listNamespace());
    assert(Date.now() - started < 1_000, "the call was not bounded");
  } finally {
    server.faults.setLatency(0);
    await server.close();
  }
});
