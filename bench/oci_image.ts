/**
 * A throwaway OCI image for the CRI benchmark: layers of random bytes (so no
 * blob is shared with any other image), written as an OCI image layout and
 * pushed to a registry with skopeo.
 *
 * @module
 */

const encoder = new TextEncoder();

async function sha256Hex(data: Uint8Array): Promise<string> {
  const hash = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(hash)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function randomBytes(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += 65_536) {
    crypto.getRandomValues(out.subarray(i, Math.min(size, i + 65_536)));
  }
  return out;
}

/** A ustar archive holding one regular file. */
function tarOneFile(name: string, data: Uint8Array): Uint8Array {
  const header = new Uint8Array(512);
  const put = (text: string, offset: number, length: number) =>
    header.set(encoder.encode(text).subarray(0, length), offset);
  const octal = (value: number, length: number) => value.toString(8).padStart(length - 1, "0");
  put(name, 0, 100);
  put(octal(0o644, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(data.length, 12), 124, 12);
  put(octal(0, 12), 136, 12);
  put("        ", 148, 8);
  put("0", 156, 1);
  put("ustar\u000000", 257, 8);
  let sum = 0;
  for (const byte of header) sum += byte;
  put(octal(sum, 7) + "\u0000", 148, 8);
  const padded = Math.ceil(data.length / 512) * 512;
  const out = new Uint8Array(512 + padded + 1024);
  out.set(header, 0);
  out.set(data, 512);
  return out;
}

async function gzip(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** What {@linkcode buildRandomImage} wrote. */
export interface BuiltImage {
  /** The OCI layout directory. */
  readonly layout: string;
  /** The manifest digest (`sha256:…`). */
  readonly digest: string;
  /** The config digest, which containerd uses as the image ID. */
  readonly configDigest: string;
  /** Total compressed layer bytes. */
  readonly bytes: number;
}

/** Writes an OCI layout (tag `bench`) with `layers` layers of `layerBytes` random bytes each. */
export async function buildRandomImage(
  dir: string,
  options: { layers: number; layerBytes: number; architecture: string },
): Promise<BuiltImage> {
  const blobs = `${dir}/blobs/sha256`;
  await Deno.mkdir(blobs, { recursive: true });
  const write = async (data: Uint8Array) => {
    const hex = await sha256Hex(data);
    await Deno.writeFile(`${blobs}/${hex}`, data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  const layers = [];
  const diffIds = [];
  for (let i = 0; i < options.layers; i++) {
    const tar = tarOneFile(`data/layer-${i}.bin`, randomBytes(options.layerBytes));
    diffIds.push(`sha256:${await sha256Hex(tar)}`);
    layers.push({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      ...await write(await gzip(tar)),
    });
  }
  const config = await write(encoder.encode(JSON.stringify({
    architecture: options.architecture,
    os: "linux",
    config: { Cmd: ["/data"] },
    rootfs: { type: "layers", diff_ids: diffIds },
  })));
  const manifest = await write(encoder.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers,
  })));
  await Deno.writeTextFile(`${dir}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await Deno.writeTextFile(
    `${dir}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        ...manifest,
        annotations: { "org.opencontainers.image.ref.name": "bench" },
      }],
    }),
  );
  return {
    layout: dir,
    digest: manifest.digest,
    configDigest: config.digest,
    bytes: layers.reduce((n, l) => n + l.size, 0),
  };
}

/** Pushes the layout's `bench` tag to `dest` (`host:port/repo:tag`) over plain HTTP. */
export async function pushImage(layout: string, dest: string): Promise<void> {
  const out = await new Deno.Command("skopeo", {
    args: ["copy", "--quiet", "--dest-tls-verify=false", `oci:${layout}:bench`, `docker://${dest}`],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `skopeo copy to ${dest} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}
