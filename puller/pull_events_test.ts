import { assertEquals } from "../testing/assert.ts";
import type { EventSink, EventType, InvolvedObject } from "../kube/events.ts";
import { recordingLogger } from "../log/logger.ts";
import { PullError } from "./errors.ts";
import { PullEvents } from "./pull_events.ts";

const SELF: InvolvedObject = {
  apiVersion: "v1",
  kind: "Pod",
  name: "icd-abc",
  namespace: "icd",
  uid: "uid-1",
};

interface Emitted {
  type: EventType;
  name: string;
  reason: string;
  message: string;
}

/** An EventSink that keeps what it was given. */
function recordingSink(): EventSink & { emitted: Emitted[] } {
  const emitted: Emitted[] = [];
  return {
    emitted,
    emit: (type, obj, reason, message) => emitted.push({ type, name: obj.name, reason, message }),
  };
}

function setup(options: { self?: InvolvedObject; desired?: number; allPresent?: boolean } = {}) {
  const state = { desired: options.desired ?? 2, allPresent: options.allPresent ?? true };
  const events = recordingSink();
  const log = recordingLogger();
  const rules = new PullEvents({
    node: "node-1",
    self: "self" in options ? options.self : SELF,
    events,
    log,
    desiredCount: () => state.desired,
    allPresent: () => state.allPresent,
  });
  return { state, events, log, rules };
}

Deno.test("PullEvents.present() emits one AllImagesPresent Event on the daemon's pod, and only once", () => {
  const { state, events, log, rules } = setup({ allPresent: false });
  rules.present();
  assertEquals(events.emitted, []);
  state.allPresent = true;
  rules.present();
  rules.present();
  assertEquals(events.emitted, [{
    type: "Normal",
    name: "icd-abc",
    reason: "AllImagesPresent",
    message: "Node node-1 holds all 2 desired images",
  }]);
  const lines = log.lines.filter((l) => l.msg === "Every desired image is present on this node");
  assertEquals(lines.length, 1);
  assertEquals(lines[0].images, 2);
});

Deno.test("PullEvents.present() says nothing while no image is desired", () => {
  const { events, log, rules } = setup({ desired: 0 });
  rules.present();
  assertEquals(events.emitted, []);
  assertEquals(log.lines, []);
});

Deno.test("PullEvents.pullFinished() emits a PullFailed Warning for a failure that counts only", () => {
  const { events, rules } = setup();
  const ref = "docker.io/library/alpine:3.20";
  rules.pullFinished(ref, { ok: true, durationMs: 5, digest: "sha256:" + "a".repeat(64) });
  rules.pullFinished(ref, { ok: false, durationMs: 5, cancelled: true });
  const error = new PullError(ref, "ErrImagePull", "Cannot pull it: manifest unknown");
  rules.pullFinished(ref, { ok: false, durationMs: 5, error });
  assertEquals(events.emitted, [{
    type: "Warning",
    name: "icd-abc",
    reason: "PullFailed",
    message: `${ref}: Cannot pull it: manifest unknown`,
  }]);
});

Deno.test("PullEvents emits no Event without the daemon's own pod, and still logs", () => {
  const { events, log, rules } = setup({ self: undefined });
  rules.present();
  const ref = "docker.io/library/alpine:3.20";
  rules.pullFinished(ref, {
    ok: false,
    durationMs: 5,
    error: new PullError(ref, "Timeout", "too slow"),
  });
  assertEquals(events.emitted, []);
  assertEquals(log.lines.map((l) => l.msg), ["Every desired image is present on this node"]);
});

Deno.test("a canary's tag check becomes a TagChecked Event the leader can read: the digest, or the failure", () => {
  const { rules, events } = setup();
  const ref = "registry.example.com/team/app:v1";
  const digest = `sha256:${"b".repeat(64)}`;
  rules.tagChecked(ref, { ok: true, durationMs: 5, digest });
  // The warden strategy's form (repository@digest) reads the same.
  rules.tagChecked(ref, {
    ok: true,
    durationMs: 5,
    digest: `registry.example.com/team/app@${digest}`,
  });
  rules.tagChecked(ref, {
    ok: false,
    durationMs: 5,
    error: new PullError(ref, "ErrImagePull", "manifest unknown"),
  });
  // Nothing to learn: no digest, an image ID, a cancelled attempt.
  rules.tagChecked(ref, { ok: true, durationMs: 5 });
  rules.tagChecked(ref, { ok: true, durationMs: 5, digest: "c".repeat(64) });
  rules.tagChecked(ref, { ok: false, durationMs: 5, cancelled: true });
  assertEquals(events.emitted, [
    {
      type: "Normal",
      name: SELF.name,
      reason: "TagChecked",
      message: `${ref} resolved to ${digest}`,
    },
    {
      type: "Normal",
      name: SELF.name,
      reason: "TagChecked",
      message: `${ref} resolved to ${digest}`,
    },
    {
      type: "Warning",
      name: SELF.name,
      reason: "TagChecked",
      message: `${ref} could not be checked: manifest unknown`,
    },
  ]);
});
