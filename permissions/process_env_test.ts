import { assert, assertEquals } from "../testing/assert.ts";
import { DAEMON_ENV, installPermittedEnv, permittedEnvView } from "./process_env.ts";

const real = { NODE_NAME: "n1", HOME: "/root", AWS_SECRET_ACCESS_KEY: "s", POD_UID: "u" };
const allowList = new Set(["NODE_NAME", "POD_NAME", "POD_UID", "DEBUG"]);
const permitted = (name: string) => allowList.has(name);
const guarded = () =>
  new Proxy(real as Record<string, string | undefined>, {
    get(target, key) {
      if (typeof key === "string" && !permitted(key)) throw new Error(`denied ${key}`);
      return Reflect.get(target, key);
    },
    ownKeys() {
      throw new Error("denied enumeration");
    },
  });

Deno.test("permittedEnvView() reads permitted variables and hides the others", () => {
  const env = permittedEnvView(guarded(), ["NODE_NAME", "POD_NAME", "POD_UID"], permitted);
  assertEquals(env.NODE_NAME, "n1");
  assertEquals(env.HOME, undefined);
  assertEquals(env.AWS_SECRET_ACCESS_KEY, undefined);
  assertEquals("HOME" in env, false);
  assertEquals("NODE_NAME" in env, true);
});

Deno.test("permittedEnvView() enumerates only the listed variables that are permitted and set", () => {
  const env = permittedEnvView(guarded(), ["NODE_NAME", "POD_NAME", "POD_UID", "HOME"], permitted);
  assertEquals(Object.keys(env), ["NODE_NAME", "POD_UID"]);
  // What debug does at load: filter the keys, then read each.
  assertEquals(Object.keys(env).filter((k) => /^debug_/i.test(k)), []);
  assertEquals({ ...env }, { NODE_NAME: "n1", POD_UID: "u" });
});

Deno.test("permittedEnvView() keeps writes and deletes to itself", () => {
  const backing: Record<string, string | undefined> = { NODE_NAME: "n1" };
  const env = permittedEnvView(backing, ["NODE_NAME"], () => true);
  env.DEBUG = "x";
  delete env.NODE_NAME;
  assertEquals(env.DEBUG, "x");
  assertEquals(env.NODE_NAME, undefined);
  assertEquals(Object.keys(env), ["DEBUG"]);
  assertEquals(backing, { NODE_NAME: "n1" });
});

Deno.test("installPermittedEnv() replaces process.env under an allow-list", () => {
  const process = { env: guarded() };
  assert(installPermittedEnv(process, DAEMON_ENV, permitted, () => false));
  assertEquals(Object.keys(process.env), ["NODE_NAME", "POD_UID"]);
});

Deno.test("installPermittedEnv() changes nothing when the whole environment is allowed", () => {
  const env = { A: "1" };
  const process = { env };
  assertEquals(installPermittedEnv(process, DAEMON_ENV, permitted, () => true), false);
  assert(process.env === env);
});

Deno.test("DAEMON_ENV lists exactly the env allow-list of deno.json's daemon set", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  );
  assertEquals([...DAEMON_ENV].sort(), [...config.permissions.daemon.env].sort());
  assertEquals([...DAEMON_ENV].sort(), [...config.permissions["daemon-cri"].env].sort());
});
