import { assertEquals, assertThrows } from "../../testing/assert.ts";
import { startFakeApiServer } from "../../testing/fake_apiserver/mod.ts";
import { recordingLogger } from "../../log/logger.ts";
import {
  authForImage,
  normalizeRegistryKey,
  parseDockerConfigJson,
  readPullSecretAuth,
} from "./registry_auth.ts";

const b64 = (text: string) => btoa(text);
const secret = (auths: Record<string, unknown>) => b64(JSON.stringify({ auths }));

Deno.test("normalizeRegistryKey() reduces config keys to host or host/path", async (t) => {
  const table: [string, string][] = [
    ["https://index.docker.io/v1/", "docker.io"],
    ["index.docker.io", "docker.io"],
    ["registry-1.docker.io", "docker.io"],
    ["docker.io", "docker.io"],
    ["http://127.0.0.1:5000", "127.0.0.1:5000"],
    ["Quay.IO", "quay.io"],
    ["https://ghcr.io/team/", "ghcr.io/team"],
    ["reg.example.com:8443/a/b", "reg.example.com:8443/a/b"],
  ];
  for (const [key, want] of table) {
    await t.step(`${key} → ${want}`, () => assertEquals(normalizeRegistryKey(key), want));
  }
});

Deno.test("parseDockerConfigJson() decodes the base64 secret value and its auth field", () => {
  const auths = parseDockerConfigJson(
    secret({ "https://index.docker.io/v1/": { auth: b64("alice:s3cr:et") } }),
  );
  assertEquals([...auths], [["docker.io", { username: "alice", password: "s3cr:et" }]]);
});

Deno.test("parseDockerConfigJson() reads username, password and tokens given in the clear", () => {
  const auths = parseDockerConfigJson(JSON.stringify({
    auths: {
      "reg:5000": { username: "bob", password: "pw", identitytoken: "idt", registrytoken: "rt" },
    },
  }));
  assertEquals(auths.get("reg:5000"), {
    username: "bob",
    password: "pw",
    identityToken: "idt",
    registryToken: "rt",
  });
});

Deno.test("parseDockerConfigJson() reads the older .dockercfg shape without auths", () => {
  const auths = parseDockerConfigJson(b64(JSON.stringify({ "quay.io": { auth: b64("u:p") } })));
  assertEquals(auths.get("quay.io"), { username: "u", password: "p" });
});

Deno.test("parseDockerConfigJson() keeps the first spelling of a registry", () => {
  const auths = parseDockerConfigJson(secret({
    "https://index.docker.io/v1/": { auth: b64("first:1") },
    "docker.io": { auth: b64("second:2") },
  }));
  assertEquals(auths.get("docker.io")?.username, "first");
});

Deno.test("parseDockerConfigJson() rejects malformed data with a reason", async (t) => {
  const table: [string, string, string][] = [
    ["not base64", "%%%", "Cannot decode image pull secret data: not base64"],
    ["not JSON", b64("nope"), "Cannot parse image pull secret data: not JSON"],
    ["an array", b64("[]"), "Cannot parse image pull secret data: not a JSON object"],
    ["auths not an object", b64('{"auths":3}'), '"auths" is not an object'],
    ["entry not an object", secret({ "r": "x" }), 'docker config entry "r": not an object'],
    ["auth without colon", secret({ "r": { auth: b64("nocolon") } }), 'base64 of "user:password"'],
    ["username not a string", secret({ "r": { username: 1 } }), '"username" is not a string'],
  ];
  for (const [name, data, message] of table) {
    await t.step(name, () => {
      assertThrows(() => parseDockerConfigJson(data), TypeError, message);
    });
  }
});

Deno.test("authForImage() matches Docker Hub under any of its names", () => {
  const auths = [parseDockerConfigJson(secret({
    "https://index.docker.io/v1/": { auth: b64("hub:pw") },
  }))];
  assertEquals(authForImage("busybox", auths)?.username, "hub");
  assertEquals(authForImage("docker.io/library/busybox:1", auths)?.username, "hub");
  assertEquals(
    authForImage("index.docker.io/team/app@sha256:" + "a".repeat(64), auths)?.username,
    "hub",
  );
  assertEquals(authForImage("quay.io/team/app", auths), undefined);
});

Deno.test("authForImage() matches the host with its port and never another host", () => {
  const auths = [parseDockerConfigJson(secret({ "127.0.0.1:5000": { auth: b64("u:p") } }))];
  assertEquals(authForImage("127.0.0.1:5000/icd/busybox:1", auths)?.username, "u");
  assertEquals(authForImage("127.0.0.1:5001/icd/busybox:1", auths), undefined);
  assertEquals(authForImage("127.0.0.1/icd/busybox:1", auths), undefined);
});

Deno.test("authForImage() prefers the longest matching repository path", () => {
  const auths = [
    parseDockerConfigJson(secret({ "ghcr.io": { auth: b64("any:1") } })),
    parseDockerConfigJson(secret({ "ghcr.io/team": { auth: b64("team:2") } })),
  ];
  assertEquals(authForImage("ghcr.io/team/app:1", auths)?.username, "team");
  assertEquals(authForImage("ghcr.io/teammate/app:1", auths)?.username, "any");
  assertEquals(authForImage("ghcr.io/other/app:1", auths)?.username, "any");
});

Deno.test("authForImage() takes the earlier secret when two match equally", () => {
  const auths = [
    parseDockerConfigJson(secret({ "quay.io": { auth: b64("first:1") } })),
    parseDockerConfigJson(secret({ "quay.io": { auth: b64("second:2") } })),
  ];
  assertEquals(authForImage("quay.io/a/b", auths)?.username, "first");
});

Deno.test("authForImage() returns nothing for a reference it cannot parse", () => {
  const auths = [parseDockerConfigJson(secret({ "docker.io": { auth: b64("u:p") } }))];
  assertEquals(authForImage("Not/Valid", auths), undefined);
});

Deno.test("readPullSecretAuth() reads the secrets in the daemon's namespace and logs each it cannot use", async () => {
  const server = await startFakeApiServer();
  try {
    server.create("namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "icd" } });
    const pullSecret = (name: string, data: Record<string, string>) =>
      server.create("secrets", {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name, namespace: "icd" },
        type: "kubernetes.io/dockerconfigjson",
        data,
      });
    pullSecret("team", {
      ".dockerconfigjson": secret({ "reg.example:5000": { username: "u", password: "p" } }),
    });
    pullSecret("broken", { ".dockerconfigjson": b64("not json") });
    pullSecret("no-key", { other: b64("x") });
    const log = recordingLogger();
    const auth = await readPullSecretAuth({
      kubeConfig: server.kubeConfig(),
      namespace: "icd",
      secrets: ["missing", "broken", "no-key", "team"],
      log,
    });
    assertEquals(auth("reg.example:5000/app:1"), { username: "u", password: "p" });
    assertEquals(auth("docker.io/library/alpine:3.20"), undefined);
    const errors = log.lines.filter((l) =>
      l.level === "error" && l.msg === "Cannot read image pull secret; pulls that need it will fail"
    );
    assertEquals(errors.map((l) => l.secret), ["missing", "broken", "no-key"]);
    assertEquals(errors[1].error, "Cannot parse image pull secret data: not JSON");
    assertEquals(errors[2].error, "it has no .dockerconfigjson key");
    assertEquals(server.requests.counts()["get secrets"], 4);
  } finally {
    await server.close();
  }
});
