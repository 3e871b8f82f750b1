import { assert, assertEquals, assertThrows } from "../testing/assert.ts";
import {
  encodeShards,
  MAX_SHARD_BYTES,
  publishedImageOf,
  readShard,
  SET_DIGEST_ANNOTATION,
  SHARD_DATA_KEY,
  viewShards,
} from "./published_set.ts";

const NS = "image-cache-daemon";
const image = (i: number) => publishedImageOf(`registry.example.com/team-${i % 97}/app-${i}:v${i}`);

Deno.test("publishedImageOf() pins digests with IfNotPresent and pulls tags Always", () => {
  assertEquals(publishedImageOf("docker.io/library/alpine:3.20"), {
    ref: "docker.io/library/alpine:3.20",
    pullPolicy: "Always",
  });
  const pinned = `docker.io/library/alpine@sha256:${"a".repeat(64)}`;
  assertEquals(publishedImageOf(pinned), {
    ref: pinned,
    pullPolicy: "IfNotPresent",
    digest: `sha256:${"a".repeat(64)}`,
  });
});

Deno.test("20,000 images fit in shards each under 900 KiB, and read back as one complete generation", () => {
  const images = Array.from({ length: 20_000 }, (_, i) => image(i));
  const shards = encodeShards(images, { namespace: NS, generation: 7 });
  assert(shards.length >= 2, `${shards.length} shards`);
  for (const shard of shards) {
    const bytes = new TextEncoder().encode(JSON.stringify(shard)).byteLength;
    assert(bytes < MAX_SHARD_BYTES, `${shard.metadata!.name}: ${bytes} bytes`);
  }
  const view = viewShards(shards.map(readShard));
  assertEquals(view.complete?.generation, 7);
  assertEquals(view.complete?.images.length, 20_000);
  assertEquals(
    new Set(view.complete?.images.map((i) => i.ref)),
    new Set(images.map((i) => i.ref)),
  );
});

Deno.test("viewShards() never applies half a generation: the newest complete one wins", async (t) => {
  const old = encodeShards([image(1), image(2)], { namespace: NS, generation: 1 });
  const next = encodeShards(Array.from({ length: 3000 }, (_, i) => image(i)), {
    namespace: NS,
    generation: 2,
    maxBytes: 100_000,
  });
  assert(next.length >= 3);
  await t.step("while generation 2 is being written, generation 1 stays applied", () => {
    for (let n = 0; n < next.length; n++) {
      const view = viewShards([...old, ...next.slice(0, n)].map(readShard));
      assertEquals(view.complete?.generation, 1);
      assertEquals(view.incomplete, n > 0 ? [2] : []);
    }
  });
  await t.step("once it is complete, generation 2 applies whole", () => {
    const view = viewShards([...old, ...next].map(readShard));
    assertEquals(view.complete?.generation, 2);
    assertEquals(view.complete?.images.length, 3000);
  });
  await t.step(
    "a shard whose content does not match the set's digest spoils its generation",
    () => {
      const tampered = structuredClone(next);
      const doc = JSON.parse(tampered[0].data![SHARD_DATA_KEY]);
      doc.images.pop();
      tampered[0].data![SHARD_DATA_KEY] = JSON.stringify(doc);
      assertEquals(viewShards([...old, ...tampered].map(readShard)).complete?.generation, 1);
    },
  );
  await t.step("an unreadable shard is reported and spoils its generation", () => {
    const broken = structuredClone(next);
    broken[1].data![SHARD_DATA_KEY] = "{not json";
    const view = viewShards([...old, ...broken].map(readShard));
    assertEquals(view.complete?.generation, 1);
    assertEquals(view.unreadable.length, 1);
    assertEquals(view.unreadable[0].name, broken[1].metadata!.name);
  });
  await t.step("shards that disagree on the set's digest are not one generation", () => {
    const mixed = structuredClone(next);
    mixed[2].metadata!.annotations![SET_DIGEST_ANNOTATION] = `sha256:${"0".repeat(64)}`;
    assertEquals(viewShards(mixed.map(readShard)).complete, undefined);
  });
});

Deno.test("readShard() keeps fields it does not know, for later versions, and rejects references that are not normalised", () => {
  // The writer hashes what it writes, unknown fields included.
  const [withField] = encodeShards([{ ...image(1), laterField: { x: [1] } } as never], {
    namespace: NS,
    generation: 3,
  });
  const read = readShard(withField);
  assertEquals(read.error, undefined);
  assertEquals((read.images![0] as unknown as { laterField: unknown }).laterField, { x: [1] });
  // Kept, so the set's digest still matches what the writer hashed.
  assertEquals(viewShards([read]).complete?.images[0].ref, image(1).ref);

  const [bad] = encodeShards([image(1)], { namespace: NS, generation: 4 });
  bad.data![SHARD_DATA_KEY] = JSON.stringify({
    format: 1,
    images: [{ ref: "alpine", pullPolicy: "Always" }],
  });
  assertEquals(readShard(bad).error, 'image "alpine" is not a normalised reference');
});

Deno.test("an empty set is published as one empty shard, not as nothing", () => {
  const shards = encodeShards([], { namespace: NS, generation: 1 });
  assertEquals(shards.length, 1);
  assertEquals(viewShards(shards.map(readShard)).complete?.images, []);
});

Deno.test("encodeShards() refuses an image too large for any shard", () => {
  assertThrows(
    () => encodeShards([image(1)], { namespace: NS, generation: 1, maxBytes: 600 }),
    RangeError,
    "too large for a shard",
  );
});

Deno.test("a tag's canary and ledger digest are published and read back; a malformed one makes the shard unreadable", () => {
  const digest = `sha256:${"c".repeat(64)}`;
  const tagged = {
    ...publishedImageOf("docker.io/library/alpine:3.20"),
    canary: "node-1",
    ledgerDigest: digest,
  };
  const view = viewShards(encodeShards([tagged], { namespace: NS, generation: 3 }).map(readShard));
  assertEquals(view.complete?.images, [tagged]);
  for (const bad of [{ ledgerDigest: "sha256:short" }, { canary: 7 }, { canary: "" }]) {
    const [shard] = encodeShards([{ ...tagged, ...bad } as unknown as typeof tagged], {
      namespace: NS,
      generation: 4,
    });
    const read = readShard(shard);
    assert(read.error !== undefined, JSON.stringify(bad));
  }
});

Deno.test("viewShards() judges the same shards once: a later view of them is the set verified before", () => {
  const shards = encodeShards(Array.from({ length: 3000 }, (_, i) => image(i)), {
    namespace: NS,
    generation: 5,
    maxBytes: 100_000,
  }).map(readShard);
  const first = viewShards(shards);
  assert(first.complete !== undefined);
  // Another generation's shard arriving (a watch event) leaves these as they were.
  const newer = readShard(encodeShards([image(1)], { namespace: NS, generation: 6 })[0]);
  assertEquals(viewShards([newer, ...shards]).complete?.generation, 6);
  const broken = { ...newer, digest: `sha256:${"0".repeat(64)}` };
  const again = viewShards([broken, ...shards]);
  assert(again.complete === first.complete, "the very set verified before");
  assertEquals(again.incomplete, [6]);
  // A shard read anew is judged anew: a copy whose images do not match its digest is refused.
  const tampered = shards.map((s, i) => i === 0 ? { ...s, images: s.images!.slice(1) } : s);
  assertEquals(viewShards(tampered).complete, undefined);
});

Deno.test("readShard() refuses a labelled ConfigMap whose name is not the one its annotations give a shard", () => {
  const [shard] = encodeShards([image(1)], { namespace: NS, generation: 3 });
  assertEquals(readShard(shard).error, undefined);
  const renamed = structuredClone(shard);
  renamed.metadata!.name = "image-cache-daemon-desired-copy";
  assertEquals(
    readShard(renamed).error,
    "its name is not image-cache-daemon-desired-3-0, as its annotations say it should be",
  );
  assertEquals(viewShards([readShard(renamed)]).complete, undefined);
});
