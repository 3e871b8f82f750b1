/**
 * A checker for the Kubernetes Pod Security Standards: every "baseline"
 * control and every "restricted" control, as the standard lists them, applied
 * to a pod spec. Used to prove the pull pod would be admitted to a namespace
 * enforcing `pod-security.kubernetes.io/enforce: restricted`.
 *
 * @module
 */
import type { V1Container, V1Pod, V1SecurityContext } from "@kubernetes/client-node";

/** Capabilities the baseline profile allows containers to add. */
const BASELINE_CAPABILITIES = new Set([
  "AUDIT_WRITE",
  "CHOWN",
  "DAC_OVERRIDE",
  "FOWNER",
  "FSETID",
  "KILL",
  "MKNOD",
  "NET_BIND_SERVICE",
  "SETFCAP",
  "SETGID",
  "SETPCAP",
  "SETUID",
  "SYS_CHROOT",
]);

/** The "safe" sysctls, the only ones the baseline profile allows. */
const SAFE_SYSCTLS = new Set([
  "kernel.shm_rmid_forced",
  "net.ipv4.ip_local_port_range",
  "net.ipv4.ip_local_reserved_ports",
  "net.ipv4.ip_unprivileged_port_start",
  "net.ipv4.tcp_syncookies",
  "net.ipv4.ping_group_range",
  "net.ipv4.tcp_keepalive_time",
  "net.ipv4.tcp_fin_timeout",
  "net.ipv4.tcp_keepalive_intvl",
  "net.ipv4.tcp_keepalive_probes",
]);

/** SELinux types the baseline profile allows. */
const SELINUX_TYPES = new Set([
  "container_t",
  "container_init_t",
  "container_kvm_t",
  "container_engine_t",
]);

/** Volume sources the restricted profile allows. */
const RESTRICTED_VOLUME_TYPES = new Set([
  "configMap",
  "csi",
  "downwardAPI",
  "emptyDir",
  "ephemeral",
  "persistentVolumeClaim",
  "projected",
  "secret",
]);

const APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/";

interface NamedContainer {
  readonly path: string;
  readonly container: Readonly<V1Container>;
}

function containersOf(pod: Readonly<V1Pod>): NamedContainer[] {
  const spec = pod.spec;
  const out: NamedContainer[] = [];
  const lists: Array<[string, readonly Readonly<V1Container>[] | undefined]> = [
    ["initContainers", spec?.initContainers],
    ["containers", spec?.containers],
    // Ephemeral containers share the fields the controls look at.
    ["ephemeralContainers", spec?.ephemeralContainers as readonly V1Container[] | undefined],
  ];
  for (const [field, list] of lists) {
    for (const container of list ?? []) {
      out.push({ path: `spec.${field}[${JSON.stringify(container.name)}]`, container });
    }
  }
  return out;
}

/**
 * Lists every way `pod` breaks the Pod Security "restricted" profile (which
 * includes "baseline"); empty when it passes. Each entry names the control
 * and the offending field, such as
 * `Privilege escalation: spec.containers["main"].securityContext.allowPrivilegeEscalation must be false`.
 *
 * Controls checked, after the standard's text:
 * baseline: HostProcess, host namespaces, privileged containers, capabilities
 * (add only the baseline set), hostPath volumes, host ports, AppArmor,
 * SELinux, `/proc` mount type, seccomp (not Unconfined), sysctls (safe set);
 * restricted: volume types, privilege escalation, running as non-root,
 * running as a non-root user, seccomp (RuntimeDefault or Localhost required),
 * capabilities (drop ALL, add only NET_BIND_SERVICE). As in the standard, the
 * Linux-only restricted controls (privilege escalation, seccomp,
 * capabilities) do not apply to pods with `spec.os.name: windows`.
 */
export function restrictedViolations(pod: Readonly<V1Pod>): string[] {
  const violations: string[] = [];
  const fail = (control: string, problem: string) => violations.push(`${control}: ${problem}`);
  const spec = pod.spec;
  const podSecurity = spec?.securityContext;
  const containers = containersOf(pod);
  const windows = spec?.os?.name === "windows";
  const securityOf = (c: NamedContainer): Readonly<V1SecurityContext> | undefined =>
    c.container.securityContext;

  // --- baseline ---

  if (podSecurity?.windowsOptions?.hostProcess === true) {
    fail("HostProcess", "spec.securityContext.windowsOptions.hostProcess must be unset or false");
  }
  for (const c of containers) {
    if (securityOf(c)?.windowsOptions?.hostProcess === true) {
      fail(
        "HostProcess",
        `${c.path}.securityContext.windowsOptions.hostProcess must be unset or false`,
      );
    }
  }

  for (const field of ["hostNetwork", "hostPID", "hostIPC"] as const) {
    if (spec?.[field] === true) fail("Host namespaces", `spec.${field} must be unset or false`);
  }

  for (const c of containers) {
    if (securityOf(c)?.privileged === true) {
      fail("Privileged containers", `${c.path}.securityContext.privileged must be unset or false`);
    }
  }

  for (const c of containers) {
    for (const capability of securityOf(c)?.capabilities?.add ?? []) {
      if (!BASELINE_CAPABILITIES.has(capability)) {
        fail(
          "Capabilities",
          `${c.path}.securityContext.capabilities.add must not include "${capability}"`,
        );
      }
    }
  }

  for (const volume of spec?.volumes ?? []) {
    if (volume.hostPath !== undefined) {
      fail(
        "HostPath volumes",
        `spec.volumes[${JSON.stringify(volume.name)}].hostPath must be unset`,
      );
    }
  }

  for (const c of containers) {
    for (const port of c.container.ports ?? []) {
      if (port.hostPort !== undefined && port.hostPort !== 0) {
        fail("Host ports", `${c.path}.ports hostPort ${port.hostPort} must be unset or 0`);
      }
    }
  }

  const appArmorTypes: Array<[string, string | undefined]> = [
    ["spec.securityContext.appArmorProfile.type", podSecurity?.appArmorProfile?.type],
    ...containers.map((c): [string, string | undefined] => [
      `${c.path}.securityContext.appArmorProfile.type`,
      securityOf(c)?.appArmorProfile?.type,
    ]),
  ];
  for (const [path, type] of appArmorTypes) {
    if (type !== undefined && type !== "RuntimeDefault" && type !== "Localhost") {
      fail("AppArmor", `${path} must be RuntimeDefault or Localhost, not "${type}"`);
    }
  }
  for (const [key, value] of Object.entries(pod.metadata?.annotations ?? {})) {
    if (!key.startsWith(APPARMOR_ANNOTATION)) continue;
    if (value !== "runtime/default" && !value.startsWith("localhost/")) {
      fail("AppArmor", `annotation ${key} must be runtime/default or localhost/*, not "${value}"`);
    }
  }

  const seLinux = [
    { path: "spec.securityContext.seLinuxOptions", options: podSecurity?.seLinuxOptions },
    ...containers.map((c) => ({
      path: `${c.path}.securityContext.seLinuxOptions`,
      options: securityOf(c)?.seLinuxOptions,
    })),
  ];
  for (const { path, options } of seLinux) {
    if (options?.type !== undefined && options.type !== "" && !SELINUX_TYPES.has(options.type)) {
      fail("SELinux", `${path}.type must be unset or a container type, not "${options.type}"`);
    }
    if (options?.user !== undefined && options.user !== "") {
      fail("SELinux", `${path}.user must be unset`);
    }
    if (options?.role !== undefined && options.role !== "") {
      fail("SELinux", `${path}.role must be unset`);
    }
  }

  for (const c of containers) {
    const procMount = securityOf(c)?.procMount;
    if (procMount !== undefined && procMount !== "Default") {
      fail("/proc mount type", `${c.path}.securityContext.procMount must be unset or Default`);
    }
  }

  const seccompTypes = [
    { path: "spec.securityContext.seccompProfile.type", type: podSecurity?.seccompProfile?.type },
    ...containers.map((c) => ({
      path: `${c.path}.securityContext.seccompProfile.type`,
      type: securityOf(c)?.seccompProfile?.type,
    })),
  ];
  for (const { path, type } of seccompTypes) {
    if (type === "Unconfined") fail("Seccomp", `${path} must not be Unconfined`);
  }

  for (const sysctl of podSecurity?.sysctls ?? []) {
    if (!SAFE_SYSCTLS.has(sysctl.name)) {
      fail("Sysctls", `spec.securityContext.sysctls must not set "${sysctl.name}"`);
    }
  }

  // --- restricted ---

  for (const volume of spec?.volumes ?? []) {
    const sources = Object.keys(volume).filter((key) =>
      key !== "name" && (volume as unknown as Record<string, unknown>)[key] !== undefined
    );
    for (const source of sources) {
      // hostPath is already reported by the baseline control.
      if (source === "hostPath" || RESTRICTED_VOLUME_TYPES.has(source)) continue;
      fail(
        "Volume types",
        `spec.volumes[${JSON.stringify(volume.name)}] must not use a ${source} volume`,
      );
    }
  }

  if (!windows) {
    for (const c of containers) {
      if (securityOf(c)?.allowPrivilegeEscalation !== false) {
        fail(
          "Privilege escalation",
          `${c.path}.securityContext.allowPrivilegeEscalation must be false`,
        );
      }
    }
  }

  const podNonRoot = podSecurity?.runAsNonRoot;
  if (podNonRoot === false) {
    fail("Running as non-root", "spec.securityContext.runAsNonRoot must not be false");
  }
  for (const c of containers) {
    const nonRoot = securityOf(c)?.runAsNonRoot;
    if (nonRoot === false) {
      fail("Running as non-root", `${c.path}.securityContext.runAsNonRoot must not be false`);
    } else if (nonRoot === undefined && podNonRoot !== true) {
      fail(
        "Running as non-root",
        `${c.path}.securityContext.runAsNonRoot must be true (or spec.securityContext.runAsNonRoot)`,
      );
    }
  }

  if (podSecurity?.runAsUser === 0) {
    fail("Running as non-root user", "spec.securityContext.runAsUser must not be 0");
  }
  for (const c of containers) {
    if (securityOf(c)?.runAsUser === 0) {
      fail("Running as non-root user", `${c.path}.securityContext.runAsUser must not be 0`);
    }
  }

  if (!windows) {
    const podSeccomp = podSecurity?.seccompProfile?.type;
    const allowed = (type: string | undefined) => type === "RuntimeDefault" || type === "Localhost";
    if (podSeccomp !== undefined && !allowed(podSeccomp) && podSeccomp !== "Unconfined") {
      fail(
        "Seccomp",
        `spec.securityContext.seccompProfile.type must be RuntimeDefault or Localhost, not "${podSeccomp}"`,
      );
    }
    for (const c of containers) {
      const type = securityOf(c)?.seccompProfile?.type;
      if (type === undefined) {
        if (!allowed(podSeccomp)) {
          fail(
            "Seccomp",
            `${c.path}.securityContext.seccompProfile.type must be RuntimeDefault or Localhost (or spec.securityContext.seccompProfile.type)`,
          );
        }
      } else if (!allowed(type) && type !== "Unconfined") {
        fail(
          "Seccomp",
          `${c.path}.securityContext.seccompProfile.type must be RuntimeDefault or Localhost, not "${type}"`,
        );
      }
    }

    for (const c of containers) {
      const capabilities = securityOf(c)?.capabilities;
      if (!(capabilities?.drop ?? []).includes("ALL")) {
        fail("Capabilities", `${c.path}.securityContext.capabilities.drop must include "ALL"`);
      }
      for (const capability of capabilities?.add ?? []) {
        // Outside the baseline set it is already reported above.
        if (capability !== "NET_BIND_SERVICE" && BASELINE_CAPABILITIES.has(capability)) {
          fail(
            "Capabilities",
            `${c.path}.securityContext.capabilities.add may only include "NET_BIND_SERVICE", not "${capability}"`,
          );
        }
      }
    }
  }

  return violations;
}
