import { assert, assertEquals, assertThrows } from "../testing/assert.ts";
import { labelMatcher, parseLabelSelector } from "./label_selector.ts";

Deno.test("labelMatcher() implements every selector operator", async (t) => {
  const labels = { app: "web", tier: "front", "example.com/team": "a", n: "5" };
  const cases: [string, boolean][] = [
    ["", true],
    ["app=web", true],
    ["app==web", true],
    ["app=api", false],
    ["app!=api", true],
    ["missing!=x", true],
    ["app!=web", false],
    ["tier in (front, back)", true],
    ["tier in (back)", false],
    ["tier notin (back)", true],
    ["missing notin (x)", true],
    ["tier notin (front)", false],
    ["example.com/team", true],
    ["missing", false],
    ["!missing", true],
    ["!app", false],
    ["app=web,tier=front", true],
    ["app=web,tier=back", false],
    ["app=web, tier in (front,back), !missing", true],
    ["n>4", true],
    ["n<4", false],
    ["missing>1", false],
  ];
  for (const [selector, expected] of cases) {
    await t.step(`${JSON.stringify(selector)} → ${expected}`, () => {
      assertEquals(labelMatcher(selector)(labels), expected);
    });
  }
});

Deno.test("parseLabelSelector() rejects malformed selectors naming the part", async (t) => {
  const cases = ["=web", "app in (a", "a b c", "app=we b", ",", "-bad=x", "n>x", "app=web,"];
  for (const selector of cases) {
    await t.step(JSON.stringify(selector), () => {
      const error = assertThrows(() => parseLabelSelector(selector), TypeError);
      assert(error.message.startsWith(`Cannot parse label selector ${JSON.stringify(selector)}`));
    });
  }
});

Deno.test("parseLabelSelector() allows an empty value for = and !=", () => {
  assertEquals(parseLabelSelector("a="), [{ key: "a", operator: "=", values: [""] }]);
});
