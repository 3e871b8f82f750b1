import { assertEquals } from "../testing/assert.ts";
import type { ImageStatus } from "../puller/node_puller.ts";
import { warmState } from "./warm_state.ts";

const image = (ref: string, extra: Partial<ImageStatus> = {}): ImageStatus => ({
  ref,
  state: "pending",
  attempts: 0,
  consecutiveFailures: 0,
  ...extra,
});

Deno.test("warmState() is cold while a pullable image is missing, naming the failing ones", () => {
  const state = warmState([
    image("a", { state: "present", everPresent: true }),
    image("b", { state: "failed", lastError: "timeout" }),
    image("c"),
  ]);
  assertEquals(state.warm, false);
  assertEquals(state.condition, {
    status: "False",
    reason: "ImagesFailing",
    message: "2 of 3 desired images missing; failing: b",
  });
});

Deno.test("warmState() is warm when only permanently failing images are missing, and says which", () => {
  const state = warmState([
    image("a", { state: "present", everPresent: true }),
    // A refresh shows as pulling; the image was present, so it still counts.
    image("r", { state: "pulling", everPresent: true }),
    image("p", { state: "failed", permanent: true }),
  ]);
  assertEquals(state.warm, true);
  assertEquals(state.condition, {
    status: "True",
    reason: "PresentExceptFailed",
    message: "2 of 3 desired images present; 1 cannot be pulled (p)",
  });
  assertEquals(warmState([]).condition.status, "True");
});

Deno.test("warmState() names at most five failing images", () => {
  const refs = ["a", "b", "c", "d", "e", "f", "g"];
  const state = warmState(refs.map((ref) => image(ref, { state: "failed" })));
  assertEquals(
    state.condition.message,
    "7 of 7 desired images missing; failing: a, b, c, d, e and 2 more",
  );
});
