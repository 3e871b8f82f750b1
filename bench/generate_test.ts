import { assert, assertEquals } from "../testing/assert.ts";
import { DesiredImages } from "../images/desired_images.ts";
import { imagesFromWorkflowTemplate } from "../sources/argo_images.ts";
import { imagesFromConfigMap } from "../sources/configmap_images.ts";
import { configMaps, imagePool, seededRandom, workflowTemplates } from "./generate.ts";
import { parseBenchArgs } from "./bench.ts";

Deno.test("seededRandom() repeats its sequence for a seed", () => {
  const a = seededRandom(42);
  const b = seededRandom(42);
  const first = Array.from({ length: 5 }, a);
  assertEquals(Array.from({ length: 5 }, b), first);
  assert(first.every((x) => x >= 0 && x < 1));
});

Deno.test("workflowTemplates() are about 8 KB each and reach every pooled image", () => {
  const pool = imagePool(200);
  const templates = workflowTemplates({ count: 100, pool });
  assertEquals(workflowTemplates({ count: 100, pool }), templates);
  const desired = new DesiredImages();
  for (const [i, obj] of templates.entries()) {
    const size = JSON.stringify(obj).length;
    assert(size > 7_000 && size < 9_000, `template ${i} is ${size} bytes`);
    desired.set(`t/${i}`, imagesFromWorkflowTemplate(obj));
  }
  assertEquals(desired.size, 200);
  assertEquals(desired.rejections(), []);
});

Deno.test("configMaps() are labelled and list pooled images in JSON or YAML", () => {
  const pool = imagePool(50);
  const maps = configMaps({ count: 10, pool, labels: { a: "b" } });
  for (const obj of maps) {
    assertEquals((obj.metadata as { labels: Record<string, string> }).labels.a, "b");
    const { images } = imagesFromConfigMap(obj);
    assert(images.length >= 3 && images.every((image) => pool.includes(image)));
  }
});

Deno.test("parseBenchArgs() reads --quick, --only and --json and rejects the rest", () => {
  assertEquals(parseBenchArgs(["--quick", "--only=1,3", "--json=out.jsonl"]), {
    quick: true,
    only: new Set([1, 3]),
    json: "out.jsonl",
  });
  let error: unknown;
  try {
    parseBenchArgs(["--only=11"]);
  } catch (e) {
    error = e;
  }
  assert(error instanceof TypeError);
});
