/**
 * A throwaway certificate authority and a server certificate for 127.0.0.1
 * and localhost, made with the openssl command-line tool.
 *
 * @module
 */

/** PEM texts for a TLS server and the CA that signed it. */
export interface TlsMaterial {
  readonly caCert: string;
  readonly cert: string;
  readonly key: string;
}

let cached: Promise<TlsMaterial> | undefined;

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(
      `Cannot create a test certificate: openssl ${args[0]} failed: ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
}

async function generate(): Promise<TlsMaterial> {
  const dir = await Deno.makeTempDir({ prefix: "fake-apiserver-tls-" });
  try {
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    await openssl([
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "30",
      "-subj",
      "/CN=fake-apiserver-ca",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ], dir);
    await openssl([
      "req",
      "-x509",
      ...ec,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-keyout",
      "server.key",
      "-out",
      "server.crt",
      "-days",
      "30",
      "-subj",
      "/CN=fake-apiserver",
      "-addext",
      "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost",
      "-addext",
      "basicConstraints=critical,CA:FALSE",
      "-addext",
      "keyUsage=critical,digitalSignature",
      "-addext",
      "extendedKeyUsage=serverAuth",
    ], dir);
    const read = (name: string) => Deno.readTextFile(`${dir}/${name}`);
    return {
      caCert: await read("ca.crt"),
      cert: await read("server.crt"),
      key: await read("server.key"),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Returns TLS material, generated once per process (openssl takes a while; tests share it).
 *
 * @throws {Error} when openssl is missing or fails.
 */
export function tlsMaterial(): Promise<TlsMaterial> {
  cached ??= generate().catch((error) => {
    cached = undefined;
    throw error;
  });
  return cached;
}
