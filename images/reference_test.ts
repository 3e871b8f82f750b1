import { assert, assertEquals, assertThrows } from "../testing/assert.ts";
import fc from "fast-check";
import {
  formatReference,
  isDigestPinned,
  normalizeReference,
  parseReference,
  registryHost,
  tryNormalizeReference,
} from "./reference.ts";

const DIGEST = "sha256:" + "a".repeat(64);

Deno.test("normalizeReference() fills in Docker's defaults", async (t) => {
  const cases: [string, string][] = [
    ["alpine", "docker.io/library/alpine:latest"],
    ["alpine:3.20", "docker.io/library/alpine:3.20"],
    ["library/alpine", "docker.io/library/alpine:latest"],
    ["docker.io/alpine", "docker.io/library/alpine:latest"],
    ["index.docker.io/library/alpine:3", "docker.io/library/alpine:3"],
    ["index.docker.io/bitnami/redis", "docker.io/bitnami/redis:latest"],
    ["bitnami/redis:7.2", "docker.io/bitnami/redis:7.2"],
    ["quay.io/argoproj/argoexec:v3.5.0", "quay.io/argoproj/argoexec:v3.5.0"],
    ["localhost:5000/a", "localhost:5000/a:latest"],
    ["localhost/a/b", "localhost/a/b:latest"],
    ["registry.example.com:443/team/app:1.0", "registry.example.com:443/team/app:1.0"],
    ["[::1]:5000/app:v1", "[::1]:5000/app:v1"],
    ["gcr.io/a/b/c/d:tag_with.dots-and-dashes", "gcr.io/a/b/c/d:tag_with.dots-and-dashes"],
    [`alpine@${DIGEST}`, `docker.io/library/alpine@${DIGEST}`],
    [`alpine:3.20@${DIGEST}`, `docker.io/library/alpine:3.20@${DIGEST}`],
    ["  alpine  ", "docker.io/library/alpine:latest"],
    // Host names are DNS names: compared, and so written, in lower case.
    ["Registry.Example.com/app", "registry.example.com/app:latest"],
    ["REGISTRY.example.COM:5000/app:v1", "registry.example.com:5000/app:v1"],
    ["LOCALHOST/app", "localhost/app:latest"],
    ["Docker.IO/alpine", "docker.io/library/alpine:latest"],
    ["INDEX.docker.io/alpine", "docker.io/library/alpine:latest"],
    ["[FE80::1]:5000/app", "[fe80::1]:5000/app:latest"],
    ["registry.example.com:05000/app", "registry.example.com:5000/app:latest"],
    ["registry.example.com:65535/app", "registry.example.com:65535/app:latest"],
    ["registry.example.com:1/app", "registry.example.com:1/app:latest"],
    ["10.0.0.1:5000/app", "10.0.0.1:5000/app:latest"],
    [`a@sha512:${"b".repeat(128)}`, `docker.io/library/a@sha512:${"b".repeat(128)}`],
    ["a:" + "T".repeat(128), "docker.io/library/a:" + "T".repeat(128)],
    ["a." + "b".repeat(60) + "/c", "a." + "b".repeat(60) + "/c:latest"],
    [`${"x".repeat(63)}.io/app`, `${"x".repeat(63)}.io/app:latest`],
    ["my_org/some__app", "docker.io/my_org/some__app:latest"],
    ["a-b---c/d", "docker.io/a-b---c/d:latest"],
  ];
  for (const [input, expected] of cases) {
    await t.step(`${JSON.stringify(input)} → ${expected}`, () => {
      assertEquals(normalizeReference(input), expected);
    });
  }
});

Deno.test("parseReference() rejects references that cannot be pulled, with the reason", async (t) => {
  const cases: [string, RegExp][] = [
    ["", /empty reference/],
    ["   ", /empty reference/],
    ["Alpine", /repository name must be lowercase/],
    ["docker.io/Library/alpine", /repository name must be lowercase/],
    ["{{inputs.parameters.image}}", /templated, not resolvable/],
    ["alpine:{{workflow.parameters.tag}}", /templated, not resolvable/],
    ["alpine@sha256:abc", /invalid digest "sha256:abc"/],
    [`alpine@sha256:${"a".repeat(63)}`, /invalid digest/],
    [`alpine@sha256:${"A".repeat(64)}`, /hex digits must be lowercase/],
    ["alpine:", /invalid tag ""/],
    ["alpine:-bad", /invalid tag "-bad"/],
    ["alpine:" + "t".repeat(129), /invalid tag/],
    ["a b", /contains white space/],
    ["/alpine", /invalid path component ""/],
    ["alpine/", /invalid path component ""/],
    ["a//b", /invalid path component ""/],
    ["_alpine", /invalid path component "_alpine"/],
    ["alpine-", /invalid path component "alpine-"/],
    ["exa_mple.com/app", /invalid registry host "exa_mple.com"/],
    [":tag", /missing repository name/],
    ["example.com/", /missing repository name|invalid path component/],
    ["a/" + "b".repeat(260), /longer than 255/],
    // Digests: only what the OCI image spec registers, at its length.
    [
      `alpine@sha384:${"a".repeat(96)}`,
      /unsupported algorithm "sha384", expected sha256 or sha512/,
    ],
    [`alpine@md5:${"a".repeat(32)}`, /unsupported algorithm "md5"/],
    [`alpine@SHA256:${"a".repeat(64)}`, /unsupported algorithm "SHA256"/],
    [`alpine@sha512:${"a".repeat(64)}`, /sha512 needs 128 hex digits, got 64/],
    [`alpine@sha256:${"a".repeat(65)}`, /sha256 needs 64 hex digits, got 65/],
    [`alpine@sha256:${"g".repeat(64)}`, /not hex digits/],
    [`alpine@sha512:${"A".repeat(128)}`, /hex digits must be lowercase/],
    [`alpine@${"a".repeat(64)}`, /expected algorithm:hex/],
    [`alpine@sha256:${"a".repeat(64)}@sha256:${"a".repeat(64)}`, /sha256 needs 64|not hex/],
    ["alpine@", /expected algorithm:hex/],
    // Ports 1–65535.
    ["registry.example.com:0/app", /port must be a number from 1 to 65535/],
    ["registry.example.com:65536/app", /port must be a number from 1 to 65535/],
    ["registry.example.com:99999999999/app", /port must be a number from 1 to 65535/],
    ["registry.example.com:/app", /port must be a number from 1 to 65535/],
    ["registry.example.com:http/app", /port must be a number from 1 to 65535/],
    ["[::1]:0/app", /port must be a number from 1 to 65535/],
    // Host names as DNS allows them.
    ["registry.example.com./app", /a trailing dot is not allowed/],
    [".example.com/app", /invalid registry host/],
    ["-example.com/app", /invalid registry host/],
    ["example-.com/app", /invalid registry host/],
    ["exa mple.com/app", /contains white space/],
    [`${"x".repeat(64)}.io/app`, /a label is longer than 63 characters/],
    [`${"abcdefgh.".repeat(29)}io/app`, /longer than 253 characters|longer than 255/],
    ["999.1.1.1/app", /not an IPv4 address/],
    ["0.256.0.0:1/team/app:1", /not an IPv4 address/],
    ["[::1/app", /invalid registry host/],
    ["ünïcode.example/app", /invalid registry host/],
    [
      "MyOrg/app",
      /has no dot or port and is not localhost; as a Docker Hub namespace it must be lowercase/,
    ],
    // Path components and their separators.
    ["a..b", /invalid path component "a..b"/],
    ["a___b", /invalid path component "a___b"/],
    ["a.-b", /invalid path component "a.-b"/],
    ["a-_b", /invalid path component "a-_b"/],
    ["a/.b", /invalid path component ".b"/],
    ["registry.example.com/Team/app", /repository name must be lowercase/],
    ["registry.example.com/ü/app", /invalid path component/],
    // Tags: at most 128 characters of [A-Za-z0-9_.-], not starting with . or -.
    ["alpine:.x", /invalid tag ".x"/],
    ["alpine:a+b", /invalid tag "a\+b"/],
    ["alpine:ü", /invalid tag/],
    [`registry.example.com/${"a".repeat(240)}`, /longer than 255/],
  ];
  for (const [input, reason] of cases) {
    await t.step(`${JSON.stringify(input)} is rejected`, () => {
      const error = assertThrows(() => parseReference(input), TypeError);
      assert(
        error.message.startsWith(`Cannot parse image reference ${JSON.stringify(input)}: `),
        error.message,
      );
      assert(reason.test(error.message), `${error.message} should match ${reason}`);
    });
  }
});

Deno.test("tryNormalizeReference() reports non-strings instead of throwing", () => {
  assertEquals(tryNormalizeReference(42), {
    ok: false,
    reason: "Cannot parse image reference 42: not a string",
  });
  assertEquals(tryNormalizeReference(null).ok, false);
  assertEquals(tryNormalizeReference("alpine"), {
    ok: true,
    ref: "docker.io/library/alpine:latest",
  });
});

Deno.test("isDigestPinned() and registryHost() read normalised references", () => {
  assert(isDigestPinned(`docker.io/library/alpine@${DIGEST}`));
  assert(!isDigestPinned("docker.io/library/alpine:3"));
  assertEquals(registryHost("alpine"), "docker.io");
  assertEquals(registryHost("localhost:5000/a"), "localhost:5000");
});

// No dots: a dotted first component would be a registry host by Docker's rule
// (the table above covers dotted components behind a registry).
const component = fc.stringMatching(/^[a-z0-9]+(?:(?:_|__|-+)[a-z0-9]+)*$/, { maxLength: 12 })
  .filter((s) => s.length > 0);
const tag = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}$/);
// Four all-digit labels are an IPv4 address, which the parser rightly refuses
// when a part is above 255 (the table above covers that); such draws are not
// host names, so they are left out here.
const hostname = fc.stringMatching(/^[a-z0-9]+(?:\.[a-z0-9]+)+$/, { maxLength: 30 })
  .filter((host) => {
    const labels = host.split(".");
    const dottedQuad = labels.length === 4 && labels.every((label) => /^[0-9]+$/.test(label));
    return !dottedQuad || labels.every((label) => Number(label) <= 255);
  });
const reference = fc.record({
  domain: fc.option(
    fc.tuple(hostname, fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }))
      .map(([h, p]) => (p ? `${h}:${p}` : h)),
    { nil: undefined },
  ),
  path: fc.array(component, { minLength: 1, maxLength: 4 }),
  tag: fc.option(tag, { nil: undefined }),
  digest: fc.option(fc.stringMatching(/^[a-f0-9]{64}$/).map((h) => `sha256:${h}`), {
    nil: undefined,
  }),
}).map(({ domain, path, tag, digest }) =>
  `${domain ? domain + "/" : ""}${path.join("/")}${tag ? ":" + tag : ""}${
    digest ? "@" + digest : ""
  }`
);

Deno.test("normalizeReference() is idempotent and round-trips through parse/format", () => {
  fc.assert(
    fc.property(reference, (input) => {
      const once = normalizeReference(input);
      assertEquals(normalizeReference(once), once);
      assertEquals(formatReference(parseReference(once)), once);
      const parsed = parseReference(input);
      assert(parsed.tag !== undefined || parsed.digest !== undefined);
    }),
    { numRuns: 500 },
  );
});

Deno.test("parseReference() never throws anything but TypeError on arbitrary input", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), (input) => {
      try {
        parseReference(input);
      } catch (error) {
        assert(error instanceof TypeError);
      }
    }),
    { numRuns: 1000 },
  );
});

Deno.test("normalizeReference() makes equal registry hosts equal, whatever their case or port zeros", () => {
  const cased = fc.tuple(hostname, fc.array(fc.boolean(), { minLength: 30, maxLength: 30 }))
    .map(([host, upper]) => [...host].map((c, i) => upper[i] ? c.toUpperCase() : c).join(""));
  fc.assert(
    fc.property(
      hostname,
      cased,
      fc.integer({ min: 1, max: 65535 }),
      fc.integer({ min: 0, max: 2 }),
      (host, spelled, port, zeros) => {
        const plain = normalizeReference(`${host}:${port}/team/app:1`);
        const other = `${spelled}:${"0".repeat(zeros)}${port}/team/app:1`;
        if (spelled.toLowerCase() === host) assertEquals(normalizeReference(other), plain);
        const normal = normalizeReference(other);
        assertEquals(registryHost(normal), `${spelled.toLowerCase()}:${port}`);
        assertEquals(normalizeReference(normal), normal);
      },
    ),
    { numRuns: 300 },
  );
});
