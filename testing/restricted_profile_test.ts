import type { V1Pod } from "@kubernetes/client-node";
import { assert, assertEquals } from "./assert.ts";
import { restrictedViolations } from "./restricted_profile.ts";

/** A minimal pod that passes the restricted profile. */
function compliantPod(): V1Pod {
  const container = () => ({
    name: "app",
    image: "docker.io/library/alpine:3.19",
    securityContext: {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
    },
  });
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "p" },
    spec: {
      securityContext: { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } },
      initContainers: [{ ...container(), name: "init" }],
      containers: [container()],
      volumes: [{ name: "scratch", emptyDir: {} }],
    },
  };
}

Deno.test("restrictedViolations() passes a compliant pod", () => {
  assertEquals(restrictedViolations(compliantPod()), []);
});

Deno.test("restrictedViolations() catches each baseline and restricted control", async (t) => {
  const cases: Array<{ control: string; change: (pod: V1Pod) => void; expected: string }> = [
    {
      control: "HostProcess",
      change: (p) => p.spec!.securityContext!.windowsOptions = { hostProcess: true },
      expected: "HostProcess: spec.securityContext.windowsOptions.hostProcess",
    },
    {
      control: "host network",
      change: (p) => p.spec!.hostNetwork = true,
      expected: "Host namespaces: spec.hostNetwork must be unset or false",
    },
    {
      control: "host PID",
      change: (p) => p.spec!.hostPID = true,
      expected: "Host namespaces: spec.hostPID",
    },
    {
      control: "host IPC",
      change: (p) => p.spec!.hostIPC = true,
      expected: "Host namespaces: spec.hostIPC",
    },
    {
      control: "privileged",
      change: (p) => p.spec!.containers[0].securityContext!.privileged = true,
      expected: 'Privileged containers: spec.containers["app"].securityContext.privileged',
    },
    {
      control: "capability outside the baseline set",
      change: (p) => p.spec!.containers[0].securityContext!.capabilities!.add = ["SYS_ADMIN"],
      expected: 'Capabilities: spec.containers["app"].securityContext.capabilities.add must not ' +
        'include "SYS_ADMIN"',
    },
    {
      control: "baseline capability other than NET_BIND_SERVICE",
      change: (p) => p.spec!.containers[0].securityContext!.capabilities!.add = ["CHOWN"],
      expected: 'may only include "NET_BIND_SERVICE", not "CHOWN"',
    },
    {
      control: "capabilities not dropped",
      change: (p) =>
        p.spec!.initContainers![0].securityContext!.capabilities = { drop: ["NET_RAW"] },
      expected: 'Capabilities: spec.initContainers["init"].securityContext.capabilities.drop ' +
        'must include "ALL"',
    },
    {
      control: "hostPath volume",
      change: (p) => p.spec!.volumes!.push({ name: "host", hostPath: { path: "/" } }),
      expected: 'HostPath volumes: spec.volumes["host"].hostPath must be unset',
    },
    {
      control: "host port",
      change: (p) => p.spec!.containers[0].ports = [{ containerPort: 80, hostPort: 8080 }],
      expected: "Host ports: ",
    },
    {
      control: "AppArmor unconfined field",
      change: (p) =>
        p.spec!.containers[0].securityContext!.appArmorProfile = { type: "Unconfined" },
      expected: "AppArmor: spec.containers",
    },
    {
      control: "AppArmor unconfined annotation",
      change: (p) =>
        p.metadata!.annotations = {
          "container.apparmor.security.beta.kubernetes.io/app": "unconfined",
        },
      expected: "AppArmor: annotation",
    },
    {
      control: "SELinux type",
      change: (p) => p.spec!.securityContext!.seLinuxOptions = { type: "spc_t" },
      expected: "SELinux: spec.securityContext.seLinuxOptions.type must be unset or a container " +
        'type, not "spc_t"',
    },
    {
      control: "SELinux user",
      change: (p) => p.spec!.containers[0].securityContext!.seLinuxOptions = { user: "root" },
      expected: "SELinux: spec.containers",
    },
    {
      control: "SELinux role",
      change: (p) => p.spec!.securityContext!.seLinuxOptions = { role: "sysadm_r" },
      expected: "SELinux: spec.securityContext.seLinuxOptions.role must be unset",
    },
    {
      control: "/proc mount",
      change: (p) => p.spec!.containers[0].securityContext!.procMount = "Unmasked",
      expected: "/proc mount type: ",
    },
    {
      control: "seccomp unconfined",
      change: (p) => p.spec!.containers[0].securityContext!.seccompProfile = { type: "Unconfined" },
      expected: 'Seccomp: spec.containers["app"].securityContext.seccompProfile.type must not ' +
        "be Unconfined",
    },
    {
      control: "seccomp unset",
      change: (p) => delete p.spec!.securityContext!.seccompProfile,
      expected: 'Seccomp: spec.initContainers["init"].securityContext.seccompProfile.type must ' +
        "be RuntimeDefault or Localhost",
    },
    {
      control: "unsafe sysctl",
      change: (p) => p.spec!.securityContext!.sysctls = [{ name: "kernel.msgmax", value: "1" }],
      expected: 'Sysctls: spec.securityContext.sysctls must not set "kernel.msgmax"',
    },
    {
      control: "volume type",
      change: (p) => p.spec!.volumes!.push({ name: "nfs", nfs: { server: "s", path: "/" } }),
      expected: 'Volume types: spec.volumes["nfs"] must not use a nfs volume',
    },
    {
      control: "privilege escalation unset",
      change: (p) => delete p.spec!.containers[0].securityContext!.allowPrivilegeEscalation,
      expected: 'Privilege escalation: spec.containers["app"].securityContext.' +
        "allowPrivilegeEscalation must be false",
    },
    {
      control: "runAsNonRoot unset",
      change: (p) => delete p.spec!.securityContext!.runAsNonRoot,
      expected: 'Running as non-root: spec.initContainers["init"].securityContext.runAsNonRoot ' +
        "must be true",
    },
    {
      control: "runAsNonRoot false on a container",
      change: (p) => p.spec!.containers[0].securityContext!.runAsNonRoot = false,
      expected: 'Running as non-root: spec.containers["app"].securityContext.runAsNonRoot must ' +
        "not be false",
    },
    {
      control: "root user",
      change: (p) => p.spec!.securityContext!.runAsUser = 0,
      expected: "Running as non-root user: spec.securityContext.runAsUser must not be 0",
    },
    {
      control: "ephemeral container",
      change: (p) => p.spec!.ephemeralContainers = [{ name: "debug", image: "busybox" }],
      expected: 'Privilege escalation: spec.ephemeralContainers["debug"]',
    },
  ];
  for (const { control, change, expected } of cases) {
    await t.step(control, () => {
      const pod = compliantPod();
      change(pod);
      const violations = restrictedViolations(pod);
      assert(
        violations.some((v) => v.includes(expected)),
        `expected a violation including ${JSON.stringify(expected)}, got ${
          JSON.stringify(violations)
        }`,
      );
    });
  }
});

Deno.test("restrictedViolations() accepts the alternatives the standard allows", async (t) => {
  const cases: Array<{ name: string; change: (pod: V1Pod) => void }> = [
    {
      name: "runAsNonRoot and seccomp on every container instead of the pod",
      change: (p) => {
        delete p.spec!.securityContext;
        for (const c of [...p.spec!.initContainers!, ...p.spec!.containers]) {
          c.securityContext!.runAsNonRoot = true;
          c.securityContext!.seccompProfile = { type: "Localhost", localhostProfile: "p.json" };
        }
      },
    },
    {
      name: "NET_BIND_SERVICE added",
      change: (p) =>
        p.spec!.containers[0].securityContext!.capabilities!.add = ["NET_BIND_SERVICE"],
    },
    {
      name: "safe sysctl",
      change: (p) =>
        p.spec!.securityContext!.sysctls = [{ name: "net.ipv4.ip_local_port_range", value: "1 2" }],
    },
    {
      name: "allowed volume types",
      change: (p) =>
        p.spec!.volumes!.push(
          { name: "c", configMap: { name: "c" } },
          { name: "s", secret: { secretName: "s" } },
          { name: "pvc", persistentVolumeClaim: { claimName: "pvc" } },
          { name: "proj", projected: { sources: [] } },
          { name: "d", downwardAPI: {} },
        ),
    },
    {
      name: "AppArmor runtime default and container SELinux type",
      change: (p) => {
        p.spec!.securityContext!.appArmorProfile = { type: "RuntimeDefault" };
        p.spec!.securityContext!.seLinuxOptions = { type: "container_t", level: "s0:c1,c2" };
        p.metadata!.annotations = {
          "container.apparmor.security.beta.kubernetes.io/app": "localhost/profile",
        };
      },
    },
    {
      name: "Windows pod without Linux-only fields",
      change: (p) => {
        p.spec!.os = { name: "windows" };
        delete p.spec!.securityContext!.seccompProfile;
        for (const c of [...p.spec!.initContainers!, ...p.spec!.containers]) {
          delete c.securityContext;
        }
      },
    },
    {
      name: "host port 0 and non-root user id",
      change: (p) => {
        p.spec!.containers[0].ports = [{ containerPort: 80, hostPort: 0 }];
        p.spec!.securityContext!.runAsUser = 1000;
      },
    },
  ];
  for (const { name, change } of cases) {
    await t.step(name, () => {
      const pod = compliantPod();
      change(pod);
      assertEquals(restrictedViolations(pod), []);
    });
  }
});

Deno.test("restrictedViolations() reports every violation of a privileged pod", () => {
  const pod: V1Pod = {
    spec: {
      hostNetwork: true,
      containers: [{ name: "root", image: "x", securityContext: { privileged: true } }],
    },
  };
  const controls = new Set(restrictedViolations(pod).map((v) => v.split(":")[0]));
  assertEquals([...controls].sort(), [
    "Capabilities",
    "Host namespaces",
    "Privilege escalation",
    "Privileged containers",
    "Running as non-root",
    "Seccomp",
  ]);
});
