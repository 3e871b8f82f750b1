import { assert, assertEquals } from "../testing/assert.ts";
import { FakeClock } from "../time/clock.ts";
import { nullLogger } from "../log/logger.ts";
import { type BoundedServerOptions, serveBounded } from "./http_server.ts";

async function withServer(
  options: Partial<BoundedServerOptions>,
  body: (port: number, server: ReturnType<typeof serveBounded>) => Promise<void>,
): Promise<void> {
  const controller = new AbortController();
  const server = serveBounded({
    hostname: "127.0.0.1",
    port: 0,
    log: nullLogger,
    signal: controller.signal,
    handler: (request) => new Response(`${request.method} ${new URL(request.url).pathname}\n`),
    ...options,
  });
  try {
    await body(server.port, server);
  } finally {
    controller.abort();
    await server.finished;
  }
}

/** Reads until the server closes the connection; returns what it sent. */
async function readAll(conn: Deno.Conn): Promise<string> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
  }
  conn.close();
  return new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
}

async function waitUntil(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert(check(), what);
}

Deno.test("serveBounded() answers one request per connection and closes it", async () => {
  await withServer({}, async (port) => {
    const response = await fetch(`http://127.0.0.1:${port}/metrics?x=1`);
    assertEquals(response.headers.get("connection"), "close");
    assertEquals(await response.text(), "GET /metrics\n");
    const head = await fetch(`http://127.0.0.1:${port}/healthz`, { method: "HEAD" });
    assertEquals([head.status, await head.text()], [200, ""]);
  });
});

Deno.test("serveBounded() closes a connection that sends nothing, or half a request, once the head timeout passes", async () => {
  const clock = new FakeClock();
  await withServer({ clock, headerTimeoutMs: 10_000 }, async (port, server) => {
    const silent = await Deno.connect({ hostname: "127.0.0.1", port });
    const half = await Deno.connect({ hostname: "127.0.0.1", port });
    await half.write(new TextEncoder().encode("GET /status HTTP/1.1\r\nHost: x\r\n"));
    await waitUntil("both accepted", () => server.stats().open === 2);
    await clock.advance(9_999);
    assertEquals(server.stats().open, 2);
    await clock.advance(1);
    assertEquals(await readAll(silent), "");
    assertEquals(await readAll(half), "");
    assertEquals(server.stats().timedOut, 2);
    assertEquals(server.stats().handled, 0);
    await waitUntil("closed", () => server.stats().open === 0);
  });
});

Deno.test("serveBounded() refuses connections beyond its limit at accept, and serves again once they go", async () => {
  await withServer({ maxConnections: 4, maxConnectionsPerClient: 100 }, async (port, server) => {
    const idle = await Promise.all(
      Array.from({ length: 10 }, () => Deno.connect({ hostname: "127.0.0.1", port })),
    );
    await waitUntil("all accepted or refused", () => server.stats().accepted === 10);
    assertEquals(server.stats().open, 4);
    assertEquals(server.stats().refused, 6);
    assertEquals(server.stats().maxOpen, 4);
    for (const conn of idle) conn.close();
    await waitUntil("idle ones gone", () => server.stats().open === 0);
    assertEquals(await (await fetch(`http://127.0.0.1:${port}/x`)).text(), "GET /x\n");
  });
});

Deno.test("serveBounded() answers 431 to an oversized head and 400 to garbage without calling the handler", async () => {
  await withServer({ maxHeadBytes: 1024 }, async (port, server) => {
    const big = await Deno.connect({ hostname: "127.0.0.1", port });
    await big.write(new TextEncoder().encode(`GET / HTTP/1.1\r\nX: ${"a".repeat(2048)}`));
    assert((await readAll(big)).startsWith("HTTP/1.1 431 "));
    const junk = await Deno.connect({ hostname: "127.0.0.1", port });
    await junk.write(new TextEncoder().encode("hello there\r\n\r\n"));
    assert((await readAll(junk)).startsWith("HTTP/1.1 400 "));
    assertEquals(server.stats().handled, 0);
  });
});

Deno.test("serveBounded() limits the connections one client address may hold, so others still get in", async () => {
  // Bound on every IPv6 and IPv4 address: 127.0.0.1 and ::1 are two clients.
  await withServer({ hostname: "::", maxConnectionsPerClient: 3 }, async (port, server) => {
    const hog = await Promise.all(
      Array.from({ length: 6 }, () => Deno.connect({ hostname: "127.0.0.1", port })),
    );
    await waitUntil("all accepted or refused", () => server.stats().accepted === 6);
    assertEquals([server.stats().open, server.stats().refused], [3, 3]);
    // Another address (the kubelet's, say) is served meanwhile.
    const other = await Deno.connect({ hostname: "::1", port });
    await other.write(new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert((await readAll(other)).endsWith("GET /healthz\n"));
    for (const conn of hog) conn.close();
  });
});
