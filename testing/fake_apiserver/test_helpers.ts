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
