/**
 * Leases (coordination.k8s.io/v1) as leader election uses them, and the
 * response bytes the request log counts per request.
 */
import { CoordinationV1Api, CoreV1Api, type V1Lease } from "@kubernetes/client-node";
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { rejection, withServer } from "./test_helpers.ts";

const NS = "default";

function lease(name: string, spec: Record<string, unknown>): V1Lease {
  return { metadata: { name, namespace: NS }, spec } as V1Lease;
}

const micro = "2026-11-28T12:00:00.123456Z";

Deno.test("a Lease round-trips through client-node with its MicroTimes to the microsecond", async () => {
  await withServer({}, async (server) => {
    const api = server.kubeConfig().makeApiClient(CoordinationV1Api);
    await api.createNamespacedLease({
      namespace: NS,
      body: lease("l", {
        holderIdentity: "pod-a",
        leaseDurationSeconds: 15,
        acquireTime: micro,
        renewTime: micro,
        leaseTransitions: 0,
      }),
    });
    const stored = server.get("leases", NS, "l")!;
    assertEquals(stored.apiVersion, "coordination.k8s.io/v1");
    assertEquals((stored.spec as Record<string, unknown>).renewTime, micro);
    const read = await api.readNamespacedLease({ namespace: NS, name: "l" });
    assertEquals(read.spec?.holderIdentity, "pod-a");
    assertEquals(String(read.spec?.acquireTime), micro);
  });
});

Deno.test("a Lease update without resourceVersion is refused, and a stale one conflicts", async () => {
  await withServer({}, async (server) => {
    const api = server.kubeConfig().makeApiClient(CoordinationV1Api);
    const created = await api.createNamespacedLease({
      namespace: NS,
      body: lease("l", { holderIdentity: "a", leaseDurationSeconds: 15, renewTime: micro }),
    });
    const unconditional = await rejection(api.replaceNamespacedLease({
      namespace: NS,
      name: "l",
      body: lease("l", { holderIdentity: "b", leaseDurationSeconds: 15 }),
    }));
    assertEquals(unconditional.code, 422);
    assertMatch(String(unconditional.body.message), /resourceVersion.*must be specified/);

    // Two candidates read the same version; only the first update wins.
    const rv = created.metadata!.resourceVersion!;
    const first = await api.replaceNamespacedLease({
      namespace: NS,
      name: "l",
      body: {
        ...lease("l", { holderIdentity: "b", leaseDurationSeconds: 15 }),
        metadata: { name: "l", namespace: NS, resourceVersion: rv },
      },
    });
    assertEquals(first.spec?.holderIdentity, "b");
    const second = await rejection(api.replaceNamespacedLease({
      namespace: NS,
      name: "l",
      body: {
        ...lease("l", { holderIdentity: "c", leaseDurationSeconds: 15 }),
        metadata: { name: "l", namespace: NS, resourceVersion: rv },
      },
    }));
    assertEquals(second.code, 409);
    assertEquals(second.body.reason, "Conflict");
    assertEquals(
      (server.get("leases", NS, "l")!.spec as { holderIdentity: string }).holderIdentity,
      "b",
    );
  });
});

Deno.test("a Lease's spec is validated as kube-apiserver does", async (t) => {
  await withServer({}, async (server) => {
    const api = server.kubeConfig().makeApiClient(CoordinationV1Api);
    await t.step("a time without six fractional digits cannot be decoded: 400", async () => {
      const failure = await rejection(api.createNamespacedLease({
        namespace: NS,
        body: lease("a", { renewTime: "2026-11-28T12:00:00Z" }),
      }));
      assertEquals(failure.code, 400);
      assertMatch(String(failure.body.message), /cannot parse/);
    });
    await t.step("leaseDurationSeconds must be positive: 422", async () => {
      const failure = await rejection(api.createNamespacedLease({
        namespace: NS,
        body: lease("b", { leaseDurationSeconds: 0 }),
      }));
      assertEquals(failure.code, 422);
      assertMatch(String(failure.body.message), /spec.leaseDurationSeconds.*greater than 0/);
    });
    await t.step("leaseTransitions must not be negative: 422", async () => {
      const failure = await rejection(api.createNamespacedLease({
        namespace: NS,
        body: lease("c", { leaseTransitions: -1 }),
      }));
      assertEquals(failure.code, 422);
    });
  });
});

Deno.test("discovery lists coordination.k8s.io/v1 leases", async () => {
  await withServer({}, async (server) => {
    const groups = await (await fetch(`${server.url}/apis`)).json();
    assert(groups.groups.some((g: { name: string }) => g.name === "coordination.k8s.io"));
    const list = await (await fetch(`${server.url}/apis/coordination.k8s.io/v1`)).json();
    assertEquals(list.resources.map((r: { name: string }) => r.name), ["leases"]);
  });
});

Deno.test("the request log counts the response bytes of each request, a watch's as they stream", async () => {
  await withServer({}, async (server) => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    await core.createNamespacedConfigMap({
      namespace: NS,
      body: { metadata: { name: "big" }, data: { k: "x".repeat(10_000) } },
    });
    server.requests.reset();
    const response = await fetch(`${server.url}/api/v1/namespaces/${NS}/configmaps/big`);
    const body = new Uint8Array(await response.arrayBuffer());
    const [get] = server.requests.entries();
    assertEquals(get.bytes, body.byteLength);
    assert(get.bytes > 10_000);
    assertEquals(server.requests.bytes()["get configmaps"], body.byteLength);

    const missing = await fetch(`${server.url}/api/v1/namespaces/${NS}/configmaps/none`);
    const missingBody = new Uint8Array(await missing.arrayBuffer());
    assertEquals(server.requests.entries()[1].bytes, missingBody.byteLength);

    const watch = await fetch(
      `${server.url}/api/v1/namespaces/${NS}/configmaps?watch=true&resourceVersion=0`,
    );
    const reader = watch.body!.getReader();
    const first = await reader.read();
    const record = server.requests.entries()[2];
    assertEquals(record.verb, "watch");
    assertEquals(record.bytes, first.value!.byteLength);
    server.create("configmaps", { metadata: { namespace: NS, name: "next" }, data: { a: "b" } });
    const second = await reader.read();
    assertEquals(record.bytes, first.value!.byteLength + second.value!.byteLength);
    await reader.cancel();
    assertEquals(
      server.requests.totalBytes(),
      body.byteLength + missingBody.byteLength + record.bytes,
    );
  });
});
