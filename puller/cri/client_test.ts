import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";
import CRI_PROTO from "./cri.proto" with { type: "text" };
import { assert, assertEquals, assertRejects, assertThrows } from "../../testing/assert.ts";
import { createCriClient, CriCallError, GrpcStatus } from "./client.ts";

// A stand-in runtime served by grpc-js on a unix socket. It decodes requests
// with snake_case names, as a runtime written in another language would see them.
const definition = protoLoader.fromJSON(
  protobuf.parse(CRI_PROTO, { keepCase: true }).root.toJSON(),
  { keepCase: true, longs: Number, defaults: true },
);
const service = (name: string) => definition[`runtime.v1.${name}`] as grpc.ServiceDefinition;

type Handler = (request: Record<string, unknown>) => Promise<Record<string, unknown>>;

async function serve(
  handlers: Record<string, Handler>,
): Promise<
  { socket: string; requests: [string, Record<string, unknown>][]; stop(): Promise<void> }
> {
  const dir = await Deno.makeTempDir({ prefix: "cri_client_test_" });
  const socket = `${dir}/cri.sock`;
  const requests: [string, Record<string, unknown>][] = [];
  const server = new grpc.Server();
  const implement = (names: string[]) =>
    Object.fromEntries(names.map((name) => [
      name,
      (
        call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>,
        done: grpc.sendUnaryData<unknown>,
      ) => {
        requests.push([name, call.request]);
        const handler = handlers[name];
        if (handler === undefined) {
          done({ code: grpc.status.UNIMPLEMENTED, details: `${name} not served` });
          return;
        }
        handler(call.request).then((res) => done(null, res), (error) => done(error));
      },
    ]));
  server.addService(service("RuntimeService"), implement(["Version"]));
  server.addService(service("ImageService"), implement(["ImageStatus", "ListImages", "PullImage"]));
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(
      `unix://${socket}`,
      grpc.ServerCredentials.createInsecure(),
      (error) => error ? reject(error) : resolve(),
    )
  );
  return {
    socket,
    requests,
    async stop() {
      server.forceShutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const never = () => new Promise<Record<string, unknown>>(() => {});

Deno.test("createCriClient() rejects an empty socket path", () => {
  assertThrows(() => createCriClient(""), TypeError, 'Cannot use CRI socket ""');
});

Deno.test("CRI calls to a socket nobody serves fail as UNAVAILABLE", async () => {
  const client = createCriClient("/nonexistent/cri.sock");
  try {
    const error = await assertRejects(() => client.version(), CriCallError);
    assertEquals(error.code, GrpcStatus.UNAVAILABLE);
    assert(error.details.includes("/nonexistent/cri.sock"), error.details);
  } finally {
    client.close();
  }
});

Deno.test("the client sends the fields a runtime expects and reads its answers", async () => {
  const server = await serve({
    Version: () =>
      Promise.resolve({
        version: "0.1.0",
        runtime_name: "fake",
        runtime_version: "9",
        runtime_api_version: "v1",
      }),
    ImageStatus: (req) =>
      Promise.resolve(
        (req.image as { image: string }).image === "present:1"
          ? { image: { id: "sha256:id", repo_tags: ["present:1"], repo_digests: [], size: 42 } }
          : {},
      ),
    ListImages: () => Promise.resolve({ images: [{ id: "sha256:a" }] }),
    PullImage: () => Promise.resolve({ image_ref: "sha256:pulled" }),
  });
  const client = createCriClient(server.socket);
  try {
    assertEquals(await client.version(), {
      version: "0.1.0",
      runtimeName: "fake",
      runtimeVersion: "9",
      runtimeApiVersion: "v1",
    });
    assertEquals(await client.imageStatus("present:1"), {
      id: "sha256:id",
      repoTags: ["present:1"],
      repoDigests: [],
      size: 42,
    });
    assertEquals(await client.imageStatus("absent:1"), undefined);
    assertEquals(await client.listImages(), [{
      id: "sha256:a",
      repoTags: [],
      repoDigests: [],
      size: 0,
    }]);
    const ref = await client.pullImage("reg/app:1", {
      auth: { username: "u", password: "p", registryToken: "t" },
    });
    assertEquals(ref, "sha256:pulled");
    const pull = server.requests.find(([name]) => name === "PullImage")?.[1];
    assertEquals((pull?.image as { image: string }).image, "reg/app:1");
    const auth = pull?.auth as Record<string, string>;
    assertEquals([auth.username, auth.password, auth.registry_token], ["u", "p", "t"]);
    assertEquals(server.requests[0], ["Version", { version: "v1" }]);
  } finally {
    client.close();
    await server.stop();
  }
});

Deno.test("a call past its deadline fails as DEADLINE_EXCEEDED", async () => {
  const server = await serve({ PullImage: never });
  const client = createCriClient(server.socket);
  try {
    const error = await assertRejects(
      () => client.pullImage("reg/app:1", { deadline: Date.now() + 100 }),
      CriCallError,
    );
    assertEquals(error.code, GrpcStatus.DEADLINE_EXCEEDED);
  } finally {
    client.close();
    await server.stop();
  }
});

Deno.test("aborting the signal cancels a call in flight, and one not yet started", async () => {
  const server = await serve({ PullImage: never });
  const client = createCriClient(server.socket);
  try {
    const controller = new AbortController();
    const pending = client.pullImage("reg/app:1", { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    const error = await assertRejects(() => pending, CriCallError);
    assertEquals(error.code, GrpcStatus.CANCELLED);
    const early = await assertRejects(
      () => client.imageStatus("reg/app:1", { signal: controller.signal }),
      CriCallError,
    );
    assertEquals(early.code, GrpcStatus.CANCELLED);
  } finally {
    client.close();
    await server.stop();
  }
});
