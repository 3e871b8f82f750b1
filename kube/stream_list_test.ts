import { KubeConfig, type KubernetesObject, RequestContext } from "@kubernetes/client-node";
import { assert, assertEquals, assertMatch, assertRejects } from "../testing/assert.ts";
import { startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import {
  apiMessage,
  apiStatus,
  loadKubeConfig,
  RequestTimeoutError,
  reuseConnections,
} from "./client.ts";
import { streamList } from "./stream_list.ts";
import { waitFor } from "../testing/wait.ts";

function configMap(name: string, labels: Record<string, string> = { pick: "yes" }) {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { namespace: "ns", name, labels },
    data: { quote: 'a "quoted" ] value', unicode: "é€😀" },
  };
}

/**
 * Closes the pooled connections of `kc` (made by `reuseConnections`).
 *
 * Why: with client and fake server in one process, a server closing an idle
 * HTTP/2 connection can crash Deno 2.9.6's node:http2 (an nghttp2 assertion
 * on GOAWAY, seen with client-node's typed APIs as well); closing the client
 * side first avoids it.
 */
async function closePool(kc: KubeConfig, url: string): Promise<void> {
  const context = new RequestContext(url, "GET" as never);
  await kc.applySecurityAuthentication(context);
  await (context.getDispatcher() as { close?(): Promise<void> } | undefined)?.close?.();
}

async function withKubeconfig<T>(
  yaml: string,
  url: string,
  run: (kc: KubeConfig, dir: string) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir();
  const kc = await (async () => {
    await Deno.writeTextFile(`${dir}/kubeconfig`, yaml);
    return loadKubeConfig({ kubeconfig: `${dir}/kubeconfig` });
  })();
  try {
    return await run(kc, dir);
  } finally {
    await closePool(kc, url);
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("streamList() reads every page over TLS with the cluster's CA and token, following continue tokens", async () => {
  const server = await startFakeApiServer({ tls: true });
  try {
    for (let i = 0; i < 7; i++) server.create("configmaps", configMap(`cm-${i}`));
    server.create("configmaps", configMap("other", { pick: "no" }));
    await withKubeconfig(server.kubeconfigYaml(), server.url, async (kc) => {
      const seen: KubernetesObject[] = [];
      const tokens: (string | undefined)[] = [];
      let continueToken: string | undefined;
      let resourceVersion = "";
      do {
        const page = await streamList(kc, "/api/v1/configmaps", {
          labelSelector: "pick=yes",
          limit: 3,
          continueToken,
        }, (obj) => seen.push(obj));
        continueToken = page.continueToken;
        resourceVersion = page.resourceVersion;
        tokens.push(continueToken);
      } while (continueToken);
      assertEquals(seen.map((o) => o.metadata?.name), [0, 1, 2, 3, 4, 5, 6].map((i) => `cm-${i}`));
      assertEquals((seen[0] as { data?: unknown }).data, configMap("x").data);
      assertEquals(tokens.length, 3);
      assert(tokens[0] && tokens[1] && tokens[2] === undefined, JSON.stringify(tokens));
      assertEquals(resourceVersion, server.resourceVersion);
      const lists = server.requests.entries().filter((r) => r.verb === "list");
      assertEquals(lists.length, 3);
    });
  } finally {
    await server.close();
  }
});

Deno.test("streamList() refuses a server its CA does not vouch for", async () => {
  const server = await startFakeApiServer({ tls: true });
  try {
    // Without the cluster's CA, only the system's roots: none signed the fake's certificate.
    const yaml = server.kubeconfigYaml().replace(
      /certificate-authority-data: .*/,
      "insecure-skip-tls-verify: false",
    );
    assert(yaml !== server.kubeconfigYaml());
    await withKubeconfig(yaml, server.url, async (kc) => {
      await assertRejects(() => streamList(kc, "/api/v1/configmaps", {}, () => {}));
      assertEquals(server.requests.entries().filter((r) => r.verb === "list").length, 0);
    });
  } finally {
    await server.close();
  }
});

Deno.test("streamList() authenticates with a token file through client-node's auth provider", async () => {
  const server = await startFakeApiServer({ tls: true });
  try {
    server.create("configmaps", configMap("a"));
    const dir = await Deno.makeTempDir();
    try {
      const tokenFile = `${dir}/token`;
      const kc = reuseConnections(new KubeConfig());
      kc.loadFromClusterAndUser(
        { name: "c", server: server.url, caData: btoa(server.caCert!), skipTLSVerify: false },
        { name: "u", authProvider: { name: "tokenFile", config: { tokenFile } } },
      );
      await Deno.writeTextFile(tokenFile, "not-the-token");
      const error = await assertRejects(() => streamList(kc, "/api/v1/configmaps", {}, () => {}));
      assertEquals(apiStatus(error), 401);
      // A fresh client (client-node caches a token file's contents for a minute).
      const fresh = reuseConnections(new KubeConfig());
      fresh.loadFromClusterAndUser(kc.getCurrentCluster()!, kc.getCurrentUser()!);
      await Deno.writeTextFile(tokenFile, server.token);
      const names: string[] = [];
      await streamList(fresh, "/api/v1/configmaps", {}, (o) => names.push(o.metadata!.name!));
      assertEquals(names, ["a"]);
      await closePool(kc, server.url);
      await closePool(fresh, server.url);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  } finally {
    await server.close();
  }
});

Deno.test("streamList() rejects an API error with its status, message and headers, as client-node does", async () => {
  const server = await startFakeApiServer();
  try {
    const kc = server.kubeConfig();
    const missing = await assertRejects(() =>
      streamList(kc, "/apis/argoproj.io/v1alpha1/nothings", {}, () => {})
    );
    assertEquals(apiStatus(missing), 404);
    for (let i = 0; i < 4; i++) server.create("configmaps", configMap(`cm-${i}`));
    const first = await streamList(kc, "/api/v1/configmaps", { limit: 2 }, () => {});
    assert(first.continueToken);
    server.create("configmaps", configMap("later"));
    server.compact();
    const expired = await assertRejects(() =>
      streamList(
        kc,
        "/api/v1/configmaps",
        { limit: 2, continueToken: first.continueToken },
        () => {},
      )
    );
    assertEquals(apiStatus(expired), 410);
    assertMatch(apiMessage(expired), /too old/);
  } finally {
    await server.close();
  }
});

/** A server whose list body arrives in two parts, the second only when `release` resolves. */
function twoPartServer(first: string, second: string, release: Promise<void>) {
  const encoder = new TextEncoder();
  return Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, () =>
    new Response(
      new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(encoder.encode(first));
          await release;
          controller.enqueue(encoder.encode(second));
          controller.close();
        },
      }),
      { headers: { "content-type": "application/json" } },
    ));
}

function plainKubeConfig(port: number): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser(
    { name: "c", server: `http://127.0.0.1:${port}`, skipTLSVerify: true },
    { name: "u", token: "t" },
  );
  return kc;
}

Deno.test("streamList() hands over each item before the rest of the page has arrived", async () => {
  const { promise: release, resolve } = Promise.withResolvers<void>();
  const http = twoPartServer(
    '{"kind":"ConfigMapList","items":[{"metadata":{"name":"a"}},{"metadata":{"na',
    'me":"b"}}],"metadata":{"resourceVersion":"9","continue":"next"}}',
    release,
  );
  try {
    const names: string[] = [];
    const page = await streamList(
      plainKubeConfig(http.addr.port),
      "/api/v1/configmaps",
      {},
      (o) => {
        names.push(o.metadata!.name!);
        // The server sends the rest only once the first item was handed over.
        if (names.length === 1) resolve();
      },
    );
    assertEquals(names, ["a", "b"]);
    assertEquals(page, { resourceVersion: "9", continueToken: "next" });
  } finally {
    resolve();
    await http.shutdown();
  }
});

Deno.test("streamList() times out a body that stalls mid-page", async () => {
  const { promise: later, resolve } = Promise.withResolvers<void>();
  const http = twoPartServer('{"items":[{"metadata":{"name":"a"}},', "{}]}", later);
  try {
    const names: string[] = [];
    await assertRejects(
      () =>
        streamList(
          plainKubeConfig(http.addr.port),
          "/api/v1/configmaps",
          {},
          (o) => names.push(o.metadata!.name!),
          { timeoutMs: 300 },
        ),
      RequestTimeoutError,
    );
    assertEquals(names, ["a"]);
  } finally {
    resolve();
    await http.shutdown();
  }
});

Deno.test("streamList() rejects a body that is not a list", async () => {
  for (const body of ['{"items":{"a":1}}', "[1,2]", '{"items":[1,2]']) {
    const http = twoPartServer(body, "", Promise.resolve());
    try {
      await assertRejects(
        () => streamList(plainKubeConfig(http.addr.port), "/x", {}, () => {}),
        SyntaxError,
      );
    } finally {
      await http.shutdown();
    }
  }
});

Deno.test("streamList() reports a page's continue token before its first item, from the API server's metadata-first lists", async () => {
  const server = await startFakeApiServer();
  try {
    for (let i = 0; i < 3; i++) server.create("configmaps", configMap(`cm-${i}`));
    const seen: string[] = [];
    const page = await streamList(
      server.kubeConfig(),
      "/api/v1/configmaps",
      { limit: 2 },
      (obj) => seen.push(`item ${obj.metadata?.name}`),
      { onMeta: (meta) => seen.push(`meta ${meta.continueToken === undefined ? "last" : "more"}`) },
    );
    assertEquals(seen, ["meta more", "item cm-0", "item cm-1"]);
    assert(page.continueToken);
  } finally {
    await server.close();
  }
});

Deno.test("streamList() asks for a custom resource list's next page before it parses the page's items, whose metadata comes last", async () => {
  const server = await startFakeApiServer();
  try {
    for (let i = 0; i < 3; i++) {
      server.create("workflowtemplates", {
        apiVersion: "argoproj.io/v1alpha1",
        kind: "WorkflowTemplate",
        metadata: { namespace: "ns", name: `wt-${i}` },
        spec: { templates: [] },
      });
    }
    const seen: string[] = [];
    const path = "/apis/argoproj.io/v1alpha1/workflowtemplates";
    const first = await streamList(
      server.kubeConfig(),
      path,
      { limit: 2 },
      (obj) => seen.push(`item ${obj.metadata?.name}`),
      { onMeta: (meta) => seen.push(`meta ${meta.continueToken === undefined ? "last" : "more"}`) },
    );
    assertEquals(seen, ["meta more", "item wt-0", "item wt-1"]);
    assert(first.continueToken);
    // The last page: its metadata says so before its item.
    seen.length = 0;
    const last = await streamList(
      server.kubeConfig(),
      path,
      { continueToken: first.continueToken },
      (obj) => seen.push(`item ${obj.metadata?.name}`),
      { onMeta: (meta) => seen.push(`meta ${meta.continueToken === undefined ? "last" : "more"}`) },
    );
    assertEquals(seen, ["meta last", "item wt-2"]);
    assertEquals(last.continueToken, undefined);
  } finally {
    await server.close();
  }
});

Deno.test("streamList() still rejects a malformed item of a page whose parsing waited for its metadata", async () => {
  const http = twoPartServer(
    '{"items":[{"metadata":{"name":"a"}},{"metadata":{"name":b}}],',
    '"metadata":{"resourceVersion":"3","continue":"next"}}',
    Promise.resolve(),
  );
  try {
    const names: string[] = [];
    await assertRejects(
      () =>
        streamList(
          plainKubeConfig(http.addr.port),
          "/apis/x/v1/things",
          {},
          (o) => names.push(o.metadata!.name!),
          { onMeta: () => names.push("meta") },
        ),
      SyntaxError,
    );
    assertEquals(names, ["meta", "a"]);
  } finally {
    await http.shutdown();
  }
});

Deno.test("streamList() hands each item's bytes to onItemBytes, unparsed, and ends the page only once the promise it returns settles", async () => {
  const server = await startFakeApiServer();
  try {
    for (let i = 0; i < 3; i++) server.create("configmaps", configMap(`cm-${i}`));
    const decoder = new TextDecoder();
    const seen: string[] = [];
    let release = () => {};
    const page = streamList(
      server.kubeConfig(),
      "/api/v1/configmaps",
      {},
      () => seen.push("parsed here"),
      {
        onItemBytes: (bytes) => {
          const obj = JSON.parse(decoder.decode(bytes));
          seen.push(`bytes ${obj.metadata.name} ${obj.data.unicode}`);
          if (seen.length === 1) return new Promise<void>((resolve) => release = resolve);
        },
      },
    );
    let ended = false;
    page.then(() => ended = true, () => {});
    await waitFor(() => seen.length >= 1, { what: "the first item" });
    // The page does not end while the promise holds it.
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert(!ended);
    release();
    const meta = await page;
    assertEquals(seen, ["bytes cm-0 é€😀", "bytes cm-1 é€😀", "bytes cm-2 é€😀"]);
    assert(meta.resourceVersion !== "");
  } finally {
    await server.close();
  }
});

Deno.test("streamList() stops reading a page's bytes while onItemBytes asks it to wait", async () => {
  const { promise: secondPart, resolve: sendSecond } = Promise.withResolvers<void>();
  const http = twoPartServer(
    '{"items":[{"metadata":{"name":"a"}},',
    '{"metadata":{"name":"b"}}],"metadata":{"resourceVersion":"4"}}',
    secondPart,
  );
  try {
    const names: string[] = [];
    let letGo = () => {};
    const reading = streamList(
      plainKubeConfig(http.addr.port),
      "/api/v1/configmaps",
      {},
      () => {},
      {
        onItemBytes: (bytes) => {
          names.push(JSON.parse(new TextDecoder().decode(bytes)).metadata.name);
          if (names.length === 1) return new Promise<void>((resolve) => letGo = resolve);
        },
      },
    );
    await waitFor(() => names.length === 1, { what: "item a" });
    sendSecond();
    // The second part has been sent; the reader holds it back until let go.
    await new Promise((resolve) => setTimeout(resolve, 50));
    assertEquals(names, ["a"]);
    letGo();
    assertEquals(await reading, { resourceVersion: "4", continueToken: undefined });
    assertEquals(names, ["a", "b"]);
  } finally {
    await http.shutdown();
  }
});
