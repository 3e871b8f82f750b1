import { assertEquals, assertRejects } from "./testing/assert.ts";
import { startFakeApiServer } from "./testing/fake_apiserver/mod.ts";
import { loadConfig } from "./config/config.ts";
import { recordingLogger } from "./log/logger.ts";
import { runDaemon } from "./daemon.ts";
import { waitFor } from "./testing/wait.ts";

Deno.test("runDaemon() fails fast on an unreachable CRI socket and stops every watch it started", async () => {
  const server = await startFakeApiServer({ nodes: ["node-1"] });
  try {
    const { config } = loadConfig([
      "--node-name=node-1",
      "--pod-namespace=icd",
      "--pull-strategy=cri",
      "--cri-socket=/nonexistent/containerd.sock",
      "--metrics-bind-address=0",
    ], () => undefined);
    const log = recordingLogger();
    await assertRejects(
      () =>
        runDaemon(config, { kubeConfig: server.kubeConfig(), log }, new AbortController().signal),
      Error,
      "is --cri-socket right?",
    );
    // Nothing is left watching the API server (the server notices closed
    // connections asynchronously, so poll for it, within a bound).
    await waitFor(() => server.openWatches() === 0, { what: "watches closed", timeoutMs: 2000 });
    assertEquals(server.openWatches(), 0);
  } finally {
    await server.close();
  }
});
