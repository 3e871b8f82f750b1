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
    ["Registry.Example.com/app", "Registry.Example.com/app:latest"],
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
const hostname = fc.stringMatching(/^[a-z0-9]+(?:\.[a-z0-9]+)+$/, { maxLength: 30 });
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
