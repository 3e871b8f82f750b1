import { assertEquals, assertMatch } from "../assert.ts";
import { withServer } from "./test_helpers.ts";

const KUBECTL = "/usr/bin/kubectl";
const hasKubectl = await Deno.stat(KUBECTL).then(() => true, () => false);

const MANIFESTS = `apiVersion: v1
kind: ConfigMap
metadata:
  name: images
  labels: { app.kubernetes.io/part-of: image-cache-daemon }
data:
  images: '["alpine"]'
---
apiVersion: v1
kind: Pod
metadata:
  name: pod-1
spec:
  containers:
  - name: main
    image: nginx:1.27
---
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: build
spec:
  templates:
  - name: main
    container:
      image: golang:1.23
`;

Deno.test({
  name:
    "a real kubectl can create -f, get and delete ConfigMaps, pods and WorkflowTemplates over TLS",
  // Only a developer machine without kubectl skips this; in CI a missing kubectl fails it.
  ignore: !hasKubectl && !Deno.env.get("CI"),
  fn: async () => {
    await withServer({ tls: true }, async (server) => {
      const dir = await Deno.makeTempDir({ prefix: "fake-apiserver-kubectl-" });
      try {
        await Deno.writeTextFile(`${dir}/kubeconfig`, server.kubeconfigYaml());
        await Deno.writeTextFile(`${dir}/manifests.yaml`, MANIFESTS);
        const kubectl = async (...args: string[]) => {
          const out = await new Deno.Command(KUBECTL, {
            args: ["--kubeconfig", `${dir}/kubeconfig`, ...args],
            stdout: "piped",
            stderr: "piped",
            env: { HOME: dir },
          }).output();
          const text = new TextDecoder().decode(out.stdout);
          if (!out.success) {
            throw new Error(
              `kubectl ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`,
            );
          }
          return text;
        };
        assertMatch(await kubectl("version"), /Server Version: v1\.32\.0-fake/);
        const created = await kubectl("create", "--validate=false", "-f", `${dir}/manifests.yaml`);
        assertEquals(created.trim().split("\n"), [
          "configmap/images created",
          "pod/pod-1 created",
          "workflowtemplate.argoproj.io/build created",
        ]);
        const list = JSON.parse(
          await kubectl("get", "configmaps,pods,workflowtemplates", "-o", "json"),
        );
        assertEquals(
          list.items.map((i: { kind: string; metadata: { name: string } }) =>
            `${i.kind}/${i.metadata.name}`
          ),
          [
            "ConfigMap/images",
            "Pod/pod-1",
            "WorkflowTemplate/build",
          ],
        );
        assertMatch(
          await kubectl("get", "cm", "-l", "app.kubernetes.io/part-of=image-cache-daemon"),
          /images/,
        );
        await kubectl("delete", "-f", `${dir}/manifests.yaml`, "--wait=false");
        assertEquals(server.list("configmaps", { namespace: "default" }), []);
        assertEquals(server.list("workflowtemplates"), []);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  },
});
