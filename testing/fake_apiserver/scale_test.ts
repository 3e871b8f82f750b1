import { CoreV1Api, Watch } from "@kubernetes/client-node";
import { assertEquals } from "../assert.ts";
import { waitFor } from "../wait.ts";
import { withServer } from "./test_helpers.ts";

Deno.test("10,000 objects list in pages and 100 concurrent watches all see each change", async () => {
  await withServer({}, async (server) => {
    const kc = server.kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    for (let i = 0; i < 10_000; i++) {
      server.create("configmaps", {
        metadata: {
          name: `cm-${String(i).padStart(5, "0")}`,
          namespace: `ns-${i % 10}`,
          labels: { n: String(i % 3) },
        },
        data: { images: '["alpine"]' },
      });
    }
    const all = await core.listConfigMapForAllNamespaces();
    assertEquals(all.items.length, 10_000);
    let paged = 0;
    let token: string | undefined;
    do {
      const page = await core.listConfigMapForAllNamespaces({ limit: 2_000, _continue: token });
      paged += page.items.length;
      token = page.metadata!._continue;
    } while (token);
    assertEquals(paged, 10_000);

    const counts = new Array(100).fill(0);
    const controllers = await Promise.all(counts.map((_, i) =>
      new Watch(kc).watch(
        "/api/v1/configmaps",
        { resourceVersion: all.metadata!.resourceVersion, labelSelector: "n=1" },
        () => counts[i]++,
        () => {},
      )
    ));
    try {
      await server.waitForWatches(100);
      for (let i = 0; i < 10; i++) {
        server.patch(
          "configmaps",
          `ns-${(3 * i + 1) % 10}`,
          `cm-${String(3 * i + 1).padStart(5, "0")}`,
          {
            data: { images: '["nginx"]' },
          },
        );
      }
      await waitFor(() => counts.every((c) => c === 10), { what: "every watch saw every change" });
    } finally {
      controllers.forEach((c) => c.abort());
    }
  });
});
