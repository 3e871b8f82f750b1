import { assertEquals, assertThrows } from "../testing/assert.ts";
import { compileRepositoryPattern, TrustPolicy } from "./trust.ts";

Deno.test("TrustPolicy.trusted() trusts --image, the named namespaces and, when asked, cluster-scoped objects", () => {
  const policy = new TrustPolicy({ trustedNamespaces: ["platform"] });
  assertEquals(policy.trusted("static/--image"), true);
  assertEquals(policy.trusted("configmap/platform/list"), true);
  assertEquals(policy.trusted("workflowtemplate/platform/t"), true);
  assertEquals(policy.trusted("configmap/tenant/list"), false);
  assertEquals(policy.trusted("clusterworkflowtemplate/t"), false);
  assertEquals(
    new TrustPolicy({ trustClusterScoped: true }).trusted("clusterworkflowtemplate/t"),
    true,
  );
});

Deno.test("TrustPolicy.allows() matches repositories by pattern, hosts as DNS names", async (t) => {
  const policy = new TrustPolicy({
    allowedRepositories: ["docker.io/library/*", "GHCR.io/acme/**", "registry.example:5000"],
  });
  const table: [string, boolean][] = [
    ["docker.io/library/alpine:3.20", true],
    ["docker.io/library/a/b:1", false],
    ["docker.io/acme/alpine:1", false],
    ["ghcr.io/acme/team/app:1", true],
    ["ghcr.io/acme/app@sha256:" + "a".repeat(64), true],
    ["ghcr.io/acmeevil/app:1", false],
    ["registry.example:5000/any/thing:1", true],
    ["registry.example/any/thing:1", false],
  ];
  for (const [ref, allowed] of table) {
    await t.step(ref, () => assertEquals(policy.allows(ref), allowed));
  }
  assertEquals(new TrustPolicy().allows("anything.example/x:1"), true);
});

Deno.test("compileRepositoryPattern() refuses empty and pathless-slash patterns", () => {
  assertThrows(() => compileRepositoryPattern(""), TypeError);
  assertThrows(() => compileRepositoryPattern("/library/*"), TypeError);
  assertEquals(compileRepositoryPattern("**").test("x/y"), true);
});

Deno.test("TrustPolicy.trusted() trusts by the origin's parts: no slash, four parts and empty parts are not an object in a trusted namespace", () => {
  const policy = new TrustPolicy({ trustedNamespaces: ["platform", ""], trustClusterScoped: true });
  assertEquals(policy.trusted("static"), true);
  assertEquals(policy.trusted("static/a/b/c"), true);
  assertEquals(policy.trusted("published-trusted/x"), true);
  assertEquals(policy.trusted("configmap"), false);
  assertEquals(policy.trusted("configmap/platform/list/extra"), false);
  assertEquals(policy.trusted("configmap/platform/"), true);
  assertEquals(policy.trusted("configmap//list"), true);
  assertEquals(policy.trusted("configmap/other/list"), false);
  assertEquals(policy.trusted("clusterworkflowtemplate/"), true);
  assertEquals(new TrustPolicy().trusted("clusterworkflowtemplate/t"), false);
  assertEquals(new TrustPolicy().trusted("static/--image"), true);
});
