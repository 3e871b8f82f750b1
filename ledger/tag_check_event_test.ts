import { assertEquals } from "../testing/assert.ts";
import { readTagCheck, TAG_CHECKED_REASON, tagCheckedMessage } from "./tag_check_event.ts";

const REF = "registry.example.com/team/app:v1";
const DIGEST = `sha256:${"a".repeat(64)}`;

function event(fields: Record<string, unknown>) {
  return {
    apiVersion: "v1",
    kind: "Event",
    metadata: { namespace: "image-cache-daemon", name: "e" },
    reason: TAG_CHECKED_REASON,
    source: { component: "image-cache-daemon", host: "node-1" },
    count: 1,
    lastTimestamp: "2026-11-29T01:00:00Z",
    ...fields,
  };
}

Deno.test("a tag check's Event reads back as written: the tag, its node and the digest or the failure", () => {
  assertEquals(readTagCheck(event({ message: tagCheckedMessage(REF, { digest: DIGEST }) })), {
    ref: REF,
    node: "node-1",
    digest: DIGEST,
    count: 1,
    at: Date.parse("2026-11-29T01:00:00Z"),
  });
  const failed = readTagCheck(
    event({ message: tagCheckedMessage(REF, { error: "manifest unknown" }), count: 3 }),
  );
  assertEquals(failed, {
    ref: REF,
    node: "node-1",
    count: 3,
    at: Date.parse("2026-11-29T01:00:00Z"),
  });
});

Deno.test("an Event that is not a well-formed tag check reads as none, never as a digest", () => {
  const cases: Record<string, unknown>[] = [
    { reason: "PullFailed", message: tagCheckedMessage(REF, { digest: DIGEST }) },
    { source: {}, message: tagCheckedMessage(REF, { digest: DIGEST }) },
    { message: `${REF} resolved to sha256:short` },
    { message: `${REF} resolved to md5:${"a".repeat(32)}` },
    // Not normalised, so not a reference the ledger keeps.
    { message: tagCheckedMessage("alpine:3", { digest: DIGEST }) },
    // A digest-pinned reference is no tag.
    { message: tagCheckedMessage(`registry.example.com/team/app@${DIGEST}`, { digest: DIGEST }) },
    { message: "something else entirely" },
    { message: 42 },
  ];
  for (const fields of cases) {
    assertEquals(readTagCheck(event(fields)), undefined, JSON.stringify(fields));
  }
});

Deno.test("a failure's message is bounded however long the error", () => {
  const message = tagCheckedMessage(REF, { error: "x".repeat(100_000) });
  assertEquals(message.length < 700, true, String(message.length));
  assertEquals(readTagCheck(event({ message }))?.digest, undefined);
});
