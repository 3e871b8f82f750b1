/**
 * The warden binary: built here with the host gcc (x86_64) exactly as the
 * Dockerfile builds it, then run the way a pull pod runs it.
 *
 * Needs gcc, strace, unshare and setpriv (util-linux), and root to build the
 * read-only root filesystem of a container with a mount namespace.
 */
import { assert, assertEquals, assertMatch } from "../testing/assert.ts";

const BUILD_SCRIPT = new URL("../warden/build.sh", import.meta.url).pathname;
const decoder = new TextDecoder();

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string, args: string[]): Promise<Ran> {
  const out = await new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

async function build(): Promise<{ dir: string; binary: string }> {
  const dir = await Deno.makeTempDir({ prefix: "warden_test_" });
  // The non-root step must reach the emptyDir below it.
  await Deno.chmod(dir, 0o755);
  const binary = `${dir}/warden`;
  const built = await run("sh", [BUILD_SCRIPT, binary]);
  assertEquals(built.code, 0, `build.sh failed: ${built.stderr}`);
  return { dir, binary };
}

/** The program headers' types of a 64-bit little-endian ELF file. */
function programHeaderTypes(elf: Uint8Array): number[] {
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const phoff = Number(view.getBigUint64(0x20, true));
  const phentsize = view.getUint16(0x36, true);
  const phnum = view.getUint16(0x38, true);
  return Array.from({ length: phnum }, (_, i) => view.getUint32(phoff + i * phentsize, true));
}

const PT_INTERP = 3;
const PT_DYNAMIC = 2;

Deno.test("warden binary", async (t) => {
  const { dir, binary } = await build();
  try {
    await t.step("is a static ELF with no loader, no dynamic section and under 4 KiB", async () => {
      const elf = await Deno.readFile(binary);
      assertEquals([...elf.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46]);
      const types = programHeaderTypes(elf);
      assert(!types.includes(PT_INTERP), "has a PT_INTERP (needs a dynamic loader)");
      assert(!types.includes(PT_DYNAMIC), "has a PT_DYNAMIC section");
      assert(elf.length < 4096, `is ${elf.length} bytes`);
    });

    await t.step("exits 0 and prints nothing when run with no arguments", async () => {
      assertEquals(await run(binary, []), { code: 0, stdout: "", stderr: "" });
    });

    await t.step(
      "exits 0 with arguments other than --install, as a pull pod's command",
      async () => {
        assertEquals((await run(binary, ["--anything", "x"])).code, 0);
      },
    );

    await t.step(
      "--install copies itself with mode 0555 as a non-root user on a read-only root filesystem",
      async () => {
        const emptyDir = `${dir}/emptydir`;
        await Deno.mkdir(emptyDir);
        // Inside a private mount namespace: the root becomes read-only and
        // the emptyDir a fresh tmpfs, as in a restricted pod; the warden runs
        // as 65532 like the image's USER.
        const script = `set -e
mount -o remount,bind,ro /
mount -t tmpfs -o mode=0777 tmpfs "$2"
if touch /warden_test_probe 2>/dev/null; then echo "root is writable"; exit 9; fi
setpriv --reuid=65532 --regid=65532 --clear-groups "$1" --install "$2/warden"
echo "entries=$(ls -A "$2" | tr '\\n' ' ')"
echo "mode=$(stat -c '%a %u' "$2/warden")"
cmp "$1" "$2/warden" && echo same
setpriv --reuid=65532 --regid=65532 --clear-groups "$2/warden" && echo "runs=$?"`;
        const out = await run("unshare", ["--mount", "sh", "-c", script, "sh", binary, emptyDir]);
        assertEquals(out.stderr, "");
        assertEquals(out.code, 0, out.stdout);
        assertEquals(out.stdout.trim().split("\n"), [
          "entries=warden ",
          "mode=555 65532",
          "same",
          "runs=0",
        ]);
      },
    );

    await t.step("--install makes only the system calls of one file copy", async () => {
      const dest = `${dir}/traced`;
      const out = await run("strace", ["-f", "-qq", "-e", "trace=all", binary, "--install", dest]);
      assertEquals(out.code, 0, out.stderr);
      const calls = out.stderr.trim().split("\n").map((line) => line.slice(0, line.indexOf("(")));
      const allowed = new Set([
        "execve",
        "openat",
        "unlinkat",
        "read",
        "write",
        "fchmod",
        "close",
        "exit_group",
      ]);
      assertEquals(calls.filter((c) => !allowed.has(c)), []);
      const opened = [...out.stderr.matchAll(/^openat\(AT_FDCWD, "([^"]+)", ([A-Z_|]+)/gm)]
        .map((m) => [m[1], m[2]]);
      assertEquals(opened, [
        ["/proc/self/exe", "O_RDONLY|O_CLOEXEC"],
        [dest, "O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC"],
      ]);
    });

    await t.step("--install replaces a read-only copy left by an earlier run", async () => {
      const dest = `${dir}/again`;
      await Deno.writeTextFile(dest, "stale");
      await Deno.chmod(dest, 0o444);
      assertEquals((await run(binary, ["--install", dest])).code, 0);
      assertEquals(await Deno.readFile(dest), await Deno.readFile(binary));
    });

    await t.step("--install refuses to write through a symlink", async () => {
      const target = `${dir}/target`;
      const link = `${dir}/link`;
      await Deno.writeTextFile(target, "keep");
      await Deno.symlink(target, link);
      // unlinkat removes the link itself, never the file it points to.
      assertEquals((await run(binary, ["--install", link])).code, 0);
      assertEquals(await Deno.readTextFile(target), "keep");
      assertEquals((await Deno.lstat(link)).isSymlink, false);
    });

    await t.step("--install exits 1 naming the path when the directory is missing", async () => {
      const out = await run(binary, ["--install", `${dir}/missing/warden`]);
      assertEquals(out.code, 1);
      assertMatch(out.stderr, /^warden: cannot create .*\/missing\/warden: errno 2\n$/);
    });

    await t.step("--install without a destination prints usage and exits 2", async () => {
      const out = await run(binary, ["--install"]);
      assertEquals(out.code, 2);
      assertEquals(out.stderr, "usage: warden [--install DEST]\n");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
