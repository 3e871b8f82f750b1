import { CoreV1Api, KubeConfig, RequestContext } from "@kubernetes/client-node";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "../testing/assert.ts";
import { startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { tlsMaterial } from "../testing/fake_apiserver/tls.ts";
import {
  apiMessage,
  apiStatus,
  boundRequests,
  isConnectionFailure,
  loadKubeConfig,
  RequestTimeoutError,
  retryAfterSeconds,
} from "./client.ts";
import { configMapCollection } from "./listers.ts";
import { dispatcherOf, withKubeconfigFile } from "../testing/kubeconfig_file.ts";

Deno.test("loadKubeConfig() reuses one connection pool for every request", async () => {
  await withKubeconfigFile(async (server, kc) => {
    const first = await dispatcherOf(kc, `${server.url}/api/v1/pods`);
    const second = await dispatcherOf(kc, `${server.url}/api/v1/configmaps`);
    assert(first !== undefined);
    assert(first === second, "a new Agent (new TCP and TLS connection) per request");
  });
});

Deno.test("loadKubeConfig() opens new connections after a call fails on its connection, not after an API error", async () => {
  await withKubeconfigFile(async (server, kc) => {
    const url = `${server.url}/api/v1/pods`;
    const api = kc.makeApiClient(CoreV1Api);
    const first = await dispatcherOf(kc, url);
    // An answer, even an error, says the connection works: the pool stays.
    await assertRejects(() => api.readNamespace({ name: "missing" }));
    assert(await dispatcherOf(kc, url) === first, "renewed after an HTTP 404");
    // No answer: the server is down, its connections dead.
    await server.faults.down();
    await assertRejects(() => api.listNamespace());
    const second = await dispatcherOf(kc, url);
    assert(second !== first, "the same pool after a failed connection");
    // A list and a watch that fail on their connection renew it too.
    const configMaps = configMapCollection(kc, { labelSelector: "a=b" });
    await assertRejects(() => configMaps.list({ limit: 10 }, () => {}));
    const third = await dispatcherOf(kc, url);
    assert(third !== second, "the same pool after a list failed on its connection");
    // However the watch reports it: as its start's rejection or through `done`.
    const ended = Promise.withResolvers<void>();
    configMaps.watch(
      { resourceVersion: "", allowWatchBookmarks: true, timeoutSeconds: 5 },
      () => {},
      () => ended.resolve(),
    ).catch(() => ended.resolve());
    await ended.promise;
    assert(
      await dispatcherOf(kc, url) !== third,
      "the same pool after a watch failed on its connection",
    );
    await server.faults.up();
    // Up again: the new pool answers.
    assert(Array.isArray((await api.listNamespace()).items));
  });
});

Deno.test("isConnectionFailure() tells a failed connection from an answer", () => {
  const refused = new TypeError("fetch failed", {
    cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6443"), {
      code: "ECONNREFUSED",
    }),
  });
  assert(isConnectionFailure(refused));
  assert(isConnectionFailure(new RequestTimeoutError("API request x timed out after 1 ms")));
  assert(
    isConnectionFailure(Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" })),
  );
  assert(!isConnectionFailure(Object.assign(new Error("HTTP 500"), { code: 500 })));
  assert(!isConnectionFailure(new TypeError("The kubeconfig has no current cluster")));
  assert(!isConnectionFailure(undefined));
});

Deno.test("loadKubeConfig() offers only HTTP/1.1 to a TLS API server that would take HTTP/2", async () => {
  const tls = await tlsMaterial();
  // A raw TLS listener offering h2 first, as kube-apiserver does: what the
  // handshake settles on is the protocol the client offered.
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: tls.cert,
    key: tls.key,
    alpnProtocols: ["h2", "http/1.1"],
  });
  const negotiated = (async () => {
    const conn = await listener.accept();
    try {
      const { alpnProtocol } = await conn.handshake();
      const body = '{"items":[]}';
      await conn.write(new TextEncoder().encode(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" +
          `content-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
      ));
      return alpnProtocol;
    } finally {
      conn.close();
    }
  })();
  const dir = await Deno.makeTempDir();
  try {
    const { port } = listener.addr as Deno.NetAddr;
    const path = `${dir}/kubeconfig`;
    await Deno.writeTextFile(
      path,
      `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:${port}
    certificate-authority-data: ${btoa(tls.caCert)}
users:
- name: u
  user:
    token: t
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`,
    );
    const core = loadKubeConfig({ kubeconfig: path }).makeApiClient(CoreV1Api);
    const list = await core.listNamespace();
    assertEquals(list.items, []);
    assertEquals(await negotiated, "http/1.1");
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadKubeConfig() names the file and the fix when it cannot load", () => {
  assertThrows(
    () => loadKubeConfig({ kubeconfig: "/nonexistent/kubeconfig" }),
    TypeError,
    'Cannot load kubeconfig "/nonexistent/kubeconfig"',
  );
});

Deno.test("loadKubeConfig() never prints the file's content when it cannot parse it", async (t) => {
  const dir = await Deno.makeTempDir();
  const secret = "s3cr3t-t0ken-value";
  const files: Record<string, string> = {
    "bad indentation": `apiVersion: v1
kind: Config
users:
- name: u
  user:
    token: ${secret}
   bad: indentation
`,
    "unterminated quote": `users:\n- name: u\n  user:\n    token: "${secret}\n`,
    "JSON": `{"users": [{"name": "u", "user": {"token": "${secret}"}}]`,
    "tab": `users:\n- name: u\n  user:\n\ttoken: ${secret}\n`,
  };
  try {
    for (const [name, text] of Object.entries(files)) {
      await t.step(name, async () => {
        const path = `${dir}/${name.replaceAll(" ", "-")}`;
        await Deno.writeTextFile(path, text);
        const error = assertThrows(() => loadKubeConfig({ kubeconfig: path }), TypeError);
        assertMatch(error.message, /^Cannot load kubeconfig "[^"]+": \S/);
        for (let i = 0; i + 4 <= secret.length; i++) {
          const piece = secret.slice(i, i + 4);
          assert(!error.message.includes(piece), `${JSON.stringify(piece)} in ${error.message}`);
        }
        assert(!error.message.includes("token"), error.message);
        assertEquals(error.cause, undefined);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("apiMessage() names the host the Deno permissions refused, not just 'fetch failed'", () => {
  const viaClientNode = new TypeError("fetch failed", {
    cause: Object.assign(new Error("getaddrinfo EPERM example.invalid"), {
      code: "EPERM",
      syscall: "getaddrinfo",
      hostname: "example.invalid",
    }),
  });
  assertMatch(
    apiMessage(viaClientNode),
    /^Network access to "example\.invalid" is refused by the Deno permissions \(--allow-net\)/,
  );
  const direct = new TypeError("fetch failed", {
    cause: new Deno.errors.NotCapable(
      'Requires net access to "example.invalid:6443", run again with the --allow-net flag',
    ),
  });
  assertMatch(apiMessage(direct), /"example\.invalid:6443" is refused by the Deno permissions/);
  assertEquals(apiMessage(new TypeError("fetch failed")), "fetch failed");
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
    // Unbounded, the call would succeed after the latency.
    server.faults.setLatency(1_500);
    await assertRejects(() => kc.makeApiClient(CoreV1Api).listNamespace());
  } finally {
    server.faults.setLatency(0);
    await server.close();
  }
});

Deno.test("boundRequests() holds a write to a tighter bound than a read", async () => {
  const server = await startFakeApiServer();
  try {
    const kc = boundRequests(server.kubeConfig(), 20_000, 200);
    server.faults.setLatency(1_500);
    const api = kc.makeApiClient(CoreV1Api);
    await assertRejects(
      () => api.createNamespace({ body: { metadata: { name: "slow" } } }),
      RequestTimeoutError,
      "API request createNamespace timed out after 200 ms",
    );
    // A read of the same latency is within its own bound.
    const list = await api.listNamespace();
    assert(Array.isArray(list.items));
  } finally {
    server.faults.setLatency(0);
    await server.close();
  }
});

/**
 * A raw HTTP server whose every response sends its headers and half a body,
 * then either closes the connection (`cut`) or goes silent (`stalled`).
 */
function halfAnswering(mode: "cut" | "stalled") {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const serve = async () => {
    for await (const conn of listener) {
      open.add(conn);
      (async () => {
        await conn.read(new Uint8Array(64 * 1024));
        const half = '{"kind":"NamespaceList","items":[';
        await conn.write(new TextEncoder().encode(
          "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" +
            `transfer-encoding: chunked\r\n\r\n${half.length.toString(16)}\r\n${half}\r\n`,
        ));
        // Cut: the connection ends without the terminating chunk.
        if (mode === "cut") {
          open.delete(conn);
          conn.close();
        }
      })().catch(() => {});
    }
  };
  const serving = serve().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      for (const conn of open) conn.close();
      await serving;
    },
  };
}

Deno.test("boundRequests() ends a call whose response body is cut or stalls, which an abort alone does not", async (t) => {
  for (const mode of ["cut", "stalled"] as const) {
    await t.step(mode, async () => {
      const server = halfAnswering(mode);
      try {
        const kc = new KubeConfig();
        kc.loadFromOptions({
          clusters: [{ name: "c", server: `http://127.0.0.1:${server.port}`, skipTLSVerify: true }],
          users: [{ name: "u" }],
          contexts: [{ name: "x", cluster: "c", user: "u" }],
          currentContext: "x",
        });
        boundRequests(kc, 300);
        // Not a timing claim: without the bound the call never settles, and a
        // test that hangs reports nothing. 100 times the bound is "never".
        let guard: ReturnType<typeof setTimeout> | undefined;
        const hung = new Promise<never>((_, reject) => {
          guard = setTimeout(() => reject(new Error("The call never settled")), 30_000);
        });
        try {
          await assertRejects(
            () => Promise.race([kc.makeApiClient(CoreV1Api).listNamespace(), hung]),
            RequestTimeoutError,
            "API request listNamespace timed out after 300 ms",
          );
        } finally {
          clearTimeout(guard);
        }
      } finally {
        await server.close();
      }
    });
  }
});

Deno.test("loadKubeConfig() in a pod: kubernetes.default.svc, the mounted CA and the mounted token file", async () => {
  const server = await startFakeApiServer({ tls: true });
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ca.crt`, server.caCert!);
    await Deno.writeTextFile(`${dir}/token`, "first-token");
    const kc = loadKubeConfig({
      serviceAccountDir: dir,
      env: (name) => (name === "KUBERNETES_SERVICE_PORT" ? "6443" : undefined),
    });
    assertEquals(kc.getCurrentCluster()?.server, "https://kubernetes.default.svc:6443");
    assertEquals(kc.getCurrentCluster()?.caFile, `${dir}/ca.crt`);
    const header = async () => {
      const ctx = new RequestContext("https://kubernetes.default.svc:6443/api/v1", "GET" as never);
      await kc.applySecurityAuthentication(ctx);
      return ctx.getHeaders()["Authorization"];
    };
    assertEquals(await header(), "Bearer first-token");
    // The token comes from the file (client-node re-reads it once a minute,
    // so a rotated projected token is picked up without a restart).
    assertEquals(kc.getCurrentUser()?.authProvider?.config?.tokenFile, `${dir}/token`);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await server.close();
  }
});

Deno.test("loadKubeConfig() outside a pod, without a kubeconfig, says what to pass", () => {
  assertThrows(
    () => loadKubeConfig({ serviceAccountDir: "/nonexistent" }),
    TypeError,
    "pass --kubeconfig, or run in a pod with a service account",
  );
});
