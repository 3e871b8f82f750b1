/**
 * Helpers shared by the fake API server's own tests.
 *
 * @module
 */
import { type FakeApiServer, type FakeApiServerOptions, startFakeApiServer } from "./mod.ts";

/** Runs `fn` against a fresh server and always closes it. */
export async function withServer(
  options: FakeApiServerOptions,
  fn: (server: FakeApiServer) => Promise<void>,
): Promise<void> {
  const server = await startFakeApiServer(options);
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

/** The HTTP status and parsed Status body of a client-node ApiException (or any error). */
export function apiFailure(error: unknown): { code: number; body: Record<string, unknown> } {
  const e = error as { code?: number; body?: unknown };
  let body: unknown = e.body;
  if (typeof body === "string") {
    try {
      body = JSON.parse(body);
    } catch {
      body = { raw: body };
    }
  }
  return { code: e.code ?? 0, body: (body ?? {}) as Record<string, unknown> };
}

/** Awaits `promise` and returns the failure it rejects with; throws when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<{
  code: number;
  body: Record<string, unknown>;
}> {
  try {
    await promise;
  } catch (error) {
    return apiFailure(error);
  }
  throw new Error("Expected the call to fail, but it succeeded");
}

/** Resolves when `condition()` holds, polling each `intervalMs`; rejects after `timeoutMs`. */
export async function eventually(
  condition: () => boolean,
  options: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting for ${options.what ?? "a condition"}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 5));
  }
}
