/*
 * warden: the no-op binary that every pull pod runs as its main container.
 *
 *   warden                  exits 0 at once (the pull pod's `main` command)
 *   warden --install DEST   copies this binary to DEST with mode 0555, then exits 0
 *
 * It uses raw system calls and no libc, so the static binary is a few
 * kilobytes and runs in any image, whatever that image holds: no shell, no
 * dynamic loader, no libc of a matching flavour. Built for x86_64 and aarch64
 * (see build.sh).
 *
 * Why it installs itself this way: the pull pod's init container runs the
 * warden image on a read-only root filesystem as a non-root user; the only
 * writable place is the emptyDir mounted at /var/run/image-cache-daemon. So
 * install reads its own executable through /proc/self/exe and writes exactly
 * one file, DEST, creating no directory and nothing else.
 */

#if defined(__x86_64__)
#define NR_READ 0
#define NR_WRITE 1
#define NR_CLOSE 3
#define NR_FCHMOD 91
#define NR_OPENAT 257
#define NR_UNLINKAT 263
#define NR_EXIT_GROUP 231

static long syscall4(long nr, long a, long b, long c, long d) {
  register long r10 __asm__("r10") = d;
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
                   : "rcx", "r11", "memory");
  return ret;
}

/* The kernel enters here with argc at the stack pointer, then argv. */
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call warden_main\n"
        "  hlt\n");

#elif defined(__aarch64__)
#define NR_READ 63
#define NR_WRITE 64
#define NR_CLOSE 57
#define NR_FCHMOD 52
#define NR_OPENAT 56
#define NR_UNLINKAT 35
#define NR_EXIT_GROUP 94

static long syscall4(long nr, long a, long b, long c, long d) {
  register long x8 __asm__("x8") = nr;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  __asm__ volatile("svc 0"
                   : "+r"(x0)
                   : "r"(x8), "r"(x1), "r"(x2), "r"(x3)
                   : "memory");
  return x0;
}

__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "  mov x0, sp\n"
        "  bl warden_main\n"
        "  brk #0\n");

#else
#error "warden supports x86_64 and aarch64 only"
#endif

/* Generic Linux values, the same on both architectures. */
#define AT_FDCWD (-100)
#define O_RDONLY 00
#define O_WRONLY 01
#define O_CREAT 0100
#define O_EXCL 0200
#define O_CLOEXEC 02000000
#define ENOENT 2
#define EINTR 4
#define INSTALL_MODE 0555

static unsigned long length(const char *s) {
  unsigned long n = 0;
  while (s[n]) n++;
  return n;
}

static int equal(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

__attribute__((noreturn)) static void leave(int code) {
  for (;;) syscall4(NR_EXIT_GROUP, code, 0, 0, 0);
}

static void put(const char *s) {
  syscall4(NR_WRITE, 2, (long)s, (long)length(s), 0);
}

/* Prints "warden: <what> <path>: errno <n>" and exits 1. */
__attribute__((noreturn)) static void fail(const char *what, const char *path, long err) {
  char digits[24];
  int i = sizeof digits - 1;
  unsigned long n = (unsigned long)(err < 0 ? -err : err);
  digits[i] = 0;
  do {
    digits[--i] = (char)('0' + n % 10);
    n /= 10;
  } while (n && i > 0);
  put("warden: ");
  put(what);
  put(" ");
  put(path);
  put(": errno ");
  put(digits + i);
  put("\n");
  leave(1);
}

static void install(const char *dest) {
  static const char self[] = "/proc/self/exe";
  char buf[4096];
  long src = syscall4(NR_OPENAT, AT_FDCWD, (long)self, O_RDONLY | O_CLOEXEC, 0);
  if (src < 0) fail("cannot open", self, src);

  /* A copy left by an earlier run of this init container is read-only, so
     replace it rather than open it for writing. */
  long err = syscall4(NR_UNLINKAT, AT_FDCWD, (long)dest, 0, 0);
  if (err < 0 && err != -ENOENT) fail("cannot replace", dest, err);

  /* O_EXCL: never write through a symlink or into a file someone else made. */
  long dst = syscall4(NR_OPENAT, AT_FDCWD, (long)dest,
                      O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, INSTALL_MODE);
  if (dst < 0) fail("cannot create", dest, dst);

  for (;;) {
    long got = syscall4(NR_READ, src, (long)buf, sizeof buf, 0);
    if (got == -EINTR) continue;
    if (got < 0) {
      syscall4(NR_UNLINKAT, AT_FDCWD, (long)dest, 0, 0);
      fail("cannot read", self, got);
    }
    if (got == 0) break;
    for (long done = 0; done < got;) {
      long put_now = syscall4(NR_WRITE, dst, (long)(buf + done), got - done, 0);
      if (put_now == -EINTR) continue;
      if (put_now <= 0) {
        /* Leave no half-written binary behind. */
        syscall4(NR_UNLINKAT, AT_FDCWD, (long)dest, 0, 0);
        fail("cannot write", dest, put_now);
      }
      done += put_now;
    }
  }

  /* The umask may have cleared bits of the creation mode; set it exactly. */
  err = syscall4(NR_FCHMOD, dst, INSTALL_MODE, 0, 0);
  if (err < 0) fail("cannot chmod", dest, err);
  err = syscall4(NR_CLOSE, dst, 0, 0, 0);
  if (err < 0) fail("cannot close", dest, err);
  syscall4(NR_CLOSE, src, 0, 0, 0);
}

__attribute__((noreturn, used)) void warden_main(long *sp) {
  long argc = sp[0];
  char **argv = (char **)(sp + 1);
  if (argc >= 2 && equal(argv[1], "--install")) {
    if (argc != 3) {
      put("usage: warden [--install DEST]\n");
      leave(2);
    }
    install(argv[2]);
  }
  leave(0);
}
