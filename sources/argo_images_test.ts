import fc from "fast-check";
import { parse } from "yaml";
import { assert, assertEquals, assertThrows } from "../testing/assert.ts";
import {
  type ArgoWork,
  imagesFromClusterWorkflowTemplate,
  imagesFromCronWorkflow,
  imagesFromWorkflowSpec,
  imagesFromWorkflowTemplate,
  MAX_CHARACTERS,
  MAX_EXPANDED_LENGTH,
  MAX_LOOP_ITEMS,
  MAX_WORK,
} from "./argo_images.ts";
import { ObjectLimitError } from "./object_limit_error.ts";
import { normalizeReference, tryNormalizeReference } from "../images/reference.ts";

const sorted = (images: Iterable<string>) => [...images].sort();

interface Case {
  name: string;
  spec: unknown;
  images: string[];
}

async function runCases(t: Deno.TestContext, cases: Case[]): Promise<void> {
  for (const c of cases) {
    await t.step(c.name, () => {
      assertEquals(sorted(imagesFromWorkflowSpec(c.spec)), [...c.images].sort());
    });
  }
}

Deno.test("imagesFromWorkflowSpec() reads every place a template names an image", async (t) => {
  await runCases(t, [
    {
      name: "container template",
      spec: { templates: [{ name: "a", container: { image: "alpine:3.20" } }] },
      images: ["alpine:3.20"],
    },
    {
      name: "script template",
      spec: {
        templates: [{ name: "a", script: { image: "python:3.12", source: "print(1)" } }],
      },
      images: ["python:3.12"],
    },
    {
      name: "containerSet containers",
      spec: {
        templates: [{
          name: "a",
          containerSet: {
            containers: [
              { name: "build", image: "maven:3.9" },
              { name: "scan", image: "aquasec/trivy:0.53.0", dependencies: ["build"] },
            ],
          },
        }],
      },
      images: ["maven:3.9", "aquasec/trivy:0.53.0"],
    },
    {
      name: "init containers and sidecars",
      spec: {
        templates: [{
          name: "a",
          initContainers: [{ name: "wait", image: "busybox:1.36" }],
          sidecars: [{ name: "db", image: "postgres:16" }],
          container: { image: "golang:1.22" },
        }],
      },
      images: ["busybox:1.36", "postgres:16", "golang:1.22"],
    },
    {
      name: "inline template in steps",
      spec: {
        templates: [{
          name: "main",
          steps: [[{ name: "a", inline: { container: { image: "alpine:3.20" } } }], [{
            name: "b",
            inline: { script: { image: "node:20", source: "1" } },
          }]],
        }],
      },
      images: ["alpine:3.20", "node:20"],
    },
    {
      name: "inline template in DAG tasks",
      spec: {
        templates: [{
          name: "main",
          dag: { tasks: [{ name: "a", inline: { container: { image: "alpine:3.20" } } }] },
        }],
      },
      images: ["alpine:3.20"],
    },
    {
      name: "inline templates nested in inline templates",
      spec: {
        templates: [{
          name: "main",
          dag: {
            tasks: [{
              name: "outer",
              inline: {
                steps: [[{
                  name: "middle",
                  inline: {
                    dag: {
                      tasks: [{
                        name: "inner",
                        inline: {
                          containerSet: { containers: [{ name: "x", image: "busybox:1.36" }] },
                          sidecars: [{ name: "s", image: "envoyproxy/envoy:v1.30" }],
                        },
                      }],
                    },
                  },
                }]],
              },
            }],
          },
        }],
      },
      images: ["busybox:1.36", "envoyproxy/envoy:v1.30"],
    },
    {
      name: "templates that name no image (steps, resource, suspend)",
      spec: {
        templates: [
          { name: "s", steps: [[{ name: "x", template: "r" }]] },
          { name: "r", resource: { action: "create", manifest: "image: not-me:1" } },
          { name: "p", suspend: { duration: "5m" } },
        ],
      },
      images: [],
    },
    {
      name: "images of templates nothing calls",
      spec: {
        entrypoint: "a",
        templates: [
          { name: "a", container: { image: "alpine:3.20" } },
          { name: "unused", container: { image: "busybox:1.36" } },
        ],
      },
      images: ["alpine:3.20", "busybox:1.36"],
    },
  ]);
});

Deno.test("imagesFromWorkflowSpec() merges templateDefaults into each template", async (t) => {
  await runCases(t, [
    {
      name: "a default container image fills container templates without one",
      spec: {
        templateDefaults: { container: { image: "runner:2.1" } },
        templates: [
          { name: "a", container: { command: ["make"] } },
          { name: "b", container: { image: "node:20" } },
        ],
      },
      images: ["runner:2.1", "node:20"],
    },
    {
      name: "a default script image fills script templates, not container ones",
      spec: {
        templateDefaults: { script: { image: "python:3.11" } },
        templates: [
          { name: "a", script: { source: "print(1)" } },
          { name: "b", container: { command: ["true"] } },
        ],
      },
      images: ["python:3.11"],
    },
    {
      name: "a default container image does not turn steps or DAG templates into pods",
      spec: {
        templateDefaults: { container: { image: "runner:2.1" } },
        templates: [
          { name: "s", steps: [[{ name: "x", template: "d" }]] },
          { name: "d", dag: { tasks: [] } },
        ],
      },
      images: [],
    },
    {
      name: "default sidecars join pod templates, merged by name",
      spec: {
        templateDefaults: {
          sidecars: [{ name: "logs", image: "fluent/fluent-bit:3.0" }],
          initContainers: [{ name: "certs", image: "certs:1" }, { name: "wait", image: "wait:1" }],
        },
        templates: [
          { name: "a", container: { image: "alpine:3.20" } },
          {
            name: "b",
            container: { image: "node:20" },
            sidecars: [{ name: "logs", image: "fluent/fluent-bit:3.1" }],
            initContainers: [{ name: "wait" }],
          },
          { name: "s", steps: [[{ name: "x", template: "a" }]] },
        ],
      },
      images: [
        "alpine:3.20",
        "node:20",
        "fluent/fluent-bit:3.0",
        "fluent/fluent-bit:3.1",
        "certs:1",
        "wait:1",
      ],
    },
    {
      name: "defaults apply to inline templates too",
      spec: {
        templateDefaults: { container: { image: "runner:2.1" } },
        templates: [{
          name: "m",
          steps: [[{ name: "x", inline: { container: { args: ["a"] } } }]],
        }],
      },
      images: ["runner:2.1"],
    },
    {
      name: "a templated default resolves in each template's scope",
      spec: {
        templateDefaults: { container: { image: "runner:{{inputs.parameters.tag}}" } },
        templates: [
          {
            name: "a",
            inputs: { parameters: [{ name: "tag", default: "1" }] },
            container: { args: ["x"] },
          },
          {
            name: "b",
            inputs: { parameters: [{ name: "tag", default: "2" }] },
            container: { args: ["y"] },
          },
        ],
      },
      images: ["runner:1", "runner:2"],
    },
  ]);
});

Deno.test("imagesFromWorkflowSpec() resolves placeholders the object fixes", async (t) => {
  await runCases(t, [
    {
      name: "workflow parameter value",
      spec: {
        arguments: { parameters: [{ name: "tag", value: "3.20" }] },
        templates: [{ name: "a", container: { image: "alpine:{{workflow.parameters.tag}}" } }],
      },
      images: ["alpine:3.20"],
    },
    {
      name: "workflow parameter default when it has no value",
      spec: {
        arguments: { parameters: [{ name: "tag", default: "3.19" }] },
        templates: [{ name: "a", container: { image: "alpine:{{workflow.parameters.tag}}" } }],
      },
      images: ["alpine:3.19"],
    },
    {
      name: "numeric parameter values read as strings",
      spec: {
        arguments: { parameters: [{ name: "v", value: 16 }] },
        templates: [{ name: "a", container: { image: "postgres:{{workflow.parameters.v}}" } }],
      },
      images: ["postgres:16"],
    },
    {
      name: "input parameter default",
      spec: {
        templates: [{
          name: "a",
          inputs: { parameters: [{ name: "image", default: "busybox:1.36" }] },
          container: { image: "{{inputs.parameters.image}}" },
        }],
      },
      images: ["busybox:1.36"],
    },
    {
      name: "white space inside the braces",
      spec: {
        templates: [{
          name: "a",
          inputs: { parameters: [{ name: "image", value: "busybox:1.36" }] },
          container: { image: "{{ inputs.parameters.image }}" },
        }],
      },
      images: ["busybox:1.36"],
    },
    {
      name: "arguments of the calling steps, for an input without default",
      spec: {
        templates: [
          {
            name: "main",
            steps: [[
              {
                name: "a",
                template: "run",
                arguments: { parameters: [{ name: "image", value: "alpine:3.20" }] },
              },
              {
                name: "b",
                template: "run",
                arguments: { parameters: [{ name: "image", value: "busybox:1.36" }] },
              },
            ]],
          },
          {
            name: "run",
            inputs: { parameters: [{ name: "image" }] },
            container: { image: "{{inputs.parameters.image}}" },
          },
        ],
      },
      images: ["alpine:3.20", "busybox:1.36"],
    },
    {
      name: "a caller's value and the callee's own default both count",
      spec: {
        templates: [
          {
            name: "main",
            dag: {
              tasks: [{
                name: "a",
                template: "run",
                arguments: { parameters: [{ name: "tag", value: "3.20" }] },
              }],
            },
          },
          {
            name: "run",
            inputs: { parameters: [{ name: "tag", default: "3.19" }] },
            container: { image: "alpine:{{inputs.parameters.tag}}" },
          },
        ],
      },
      images: ["alpine:3.19", "alpine:3.20"],
    },
    {
      name: "an input's own value wins over what a caller passes",
      spec: {
        templates: [
          {
            name: "main",
            steps: [[{
              name: "a",
              template: "run",
              arguments: { parameters: [{ name: "tag", value: "ignored" }] },
            }]],
          },
          {
            name: "run",
            inputs: { parameters: [{ name: "tag", value: "3.20" }] },
            container: { image: "alpine:{{inputs.parameters.tag}}" },
          },
        ],
      },
      images: ["alpine:3.20"],
    },
    {
      name: "values passed down a chain of callers",
      spec: {
        entrypoint: "main",
        arguments: { parameters: [{ name: "registry", value: "ghcr.io/acme" }] },
        templates: [
          {
            name: "main",
            steps: [[{
              name: "a",
              template: "middle",
              arguments: {
                parameters: [{ name: "repo", value: "{{workflow.parameters.registry}}/api" }],
              },
            }]],
          },
          {
            name: "middle",
            inputs: { parameters: [{ name: "repo" }] },
            dag: {
              tasks: [{
                name: "b",
                template: "leaf",
                arguments: {
                  parameters: [{ name: "image", value: "{{inputs.parameters.repo}}:v1" }],
                },
              }],
            },
          },
          {
            name: "leaf",
            inputs: { parameters: [{ name: "image" }] },
            container: { image: "{{inputs.parameters.image}}" },
          },
        ],
      },
      images: ["ghcr.io/acme/api:v1"],
    },
    {
      name: "the entrypoint's inputs take the workflow arguments of the same name",
      spec: {
        entrypoint: "main",
        arguments: { parameters: [{ name: "image", value: "alpine:3.20" }] },
        templates: [{
          name: "main",
          inputs: { parameters: [{ name: "image" }] },
          container: { image: "{{inputs.parameters.image}}" },
        }],
      },
      images: ["alpine:3.20"],
    },
    {
      name: "withItems over strings",
      spec: {
        templates: [
          {
            name: "main",
            steps: [[{
              name: "a",
              template: "run",
              withItems: ["3.10", "3.11", 3.12],
              arguments: { parameters: [{ name: "image", value: "python:{{item}}" }] },
            }]],
          },
          {
            name: "run",
            inputs: { parameters: [{ name: "image" }] },
            container: { image: "{{inputs.parameters.image}}" },
          },
        ],
      },
      images: ["python:3.10", "python:3.11", "python:3.12"],
    },
    {
      name: "withItems over objects",
      spec: {
        templates: [
          {
            name: "main",
            dag: {
              tasks: [{
                name: "a",
                template: "run",
                withItems: [{ os: "debian", tag: "bookworm" }, { os: "ubuntu", tag: "24.04" }],
                arguments: { parameters: [{ name: "image", value: "{{item.os}}:{{item.tag}}" }] },
              }],
            },
          },
          {
            name: "run",
            inputs: { parameters: [{ name: "image" }] },
            container: { image: "{{inputs.parameters.image}}" },
          },
        ],
      },
      images: ["debian:bookworm", "ubuntu:24.04"],
    },
    {
      name: "withItems reaching an inline template directly",
      spec: {
        templates: [{
          name: "main",
          steps: [[{
            name: "a",
            withItems: ["1.36", "1.37"],
            inline: { container: { image: "busybox:{{item}}" } },
          }]],
        }],
      },
      images: ["busybox:1.36", "busybox:1.37"],
    },
    {
      name: "withSequence with a count and a format",
      spec: {
        templates: [{
          name: "main",
          steps: [[{
            name: "a",
            withSequence: { count: "2", start: 1, format: "v%02d" },
            inline: { container: { image: "app:{{item}}" } },
          }]],
        }],
      },
      images: ["app:v01", "app:v02"],
    },
    {
      name: "withSequence from start to end, counting down",
      spec: {
        templates: [{
          name: "main",
          steps: [[{
            name: "a",
            withSequence: { start: "3", end: "2" },
            inline: { container: { image: "app:{{item}}" } },
          }]],
        }],
      },
      images: ["app:2", "app:3"],
    },
    {
      name: "an inline template sees the enclosing template's inputs",
      spec: {
        templates: [{
          name: "main",
          inputs: { parameters: [{ name: "tag", default: "3.20" }] },
          steps: [[{
            name: "a",
            inline: { container: { image: "alpine:{{inputs.parameters.tag}}" } },
          }]],
        }],
      },
      images: ["alpine:3.20"],
    },
    {
      name: "exit handlers and lifecycle hooks with arguments",
      spec: {
        onExit: "bye",
        hooks: {
          running: {
            expression: "workflow.status == 'Running'",
            template: "hook",
            arguments: { parameters: [{ name: "image", value: "curlimages/curl:8.8.0" }] },
          },
        },
        templates: [
          { name: "bye", container: { image: "alpine:3.20" } },
          {
            name: "hook",
            inputs: { parameters: [{ name: "image" }] },
            container: { image: "{{inputs.parameters.image}}" },
          },
        ],
      },
      images: ["alpine:3.20", "curlimages/curl:8.8.0"],
    },
  ]);
});

Deno.test("imagesFromWorkflowSpec() returns unresolvable references as written", async (t) => {
  await runCases(t, [
    {
      name: "a workflow parameter without a value",
      spec: {
        arguments: { parameters: [{ name: "image" }] },
        templates: [{ name: "a", container: { image: "{{workflow.parameters.image}}" } }],
      },
      images: ["{{workflow.parameters.image}}"],
    },
    {
      name: "a workflow parameter read from a ConfigMap at run time",
      spec: {
        arguments: {
          parameters: [{
            name: "tag",
            valueFrom: { configMapKeyRef: { name: "versions", key: "tag" } },
          }],
        },
        templates: [{ name: "a", container: { image: "app:{{workflow.parameters.tag}}" } }],
      },
      images: ["app:{{workflow.parameters.tag}}"],
    },
    {
      name: "an input nobody gives a value",
      spec: {
        templates: [{
          name: "a",
          inputs: { parameters: [{ name: "image" }] },
          container: { image: "{{inputs.parameters.image}}" },
        }],
      },
      images: ["{{inputs.parameters.image}}"],
    },
    {
      name: "withParam, whose list exists only at run time",
      spec: {
        templates: [
          {
            name: "main",
            dag: {
              tasks: [
                { name: "gen", template: "gen" },
                {
                  name: "fan",
                  template: "run",
                  withParam: "{{tasks.gen.outputs.result}}",
                  arguments: { parameters: [{ name: "image", value: "{{item}}" }] },
                },
              ],
            },
          },
          { name: "gen", script: { image: "python:3.12", source: "print('[]')" } },
          {
            name: "run",
            inputs: { parameters: [{ name: "image" }] },
            container: { image: "{{inputs.parameters.image}}" },
          },
        ],
      },
      images: ["python:3.12", "{{inputs.parameters.image}}"],
    },
    {
      name: "a step output, partly resolvable: kept whole as written",
      spec: {
        arguments: { parameters: [{ name: "registry", value: "ghcr.io/acme" }] },
        templates: [{
          name: "a",
          container: {
            image: "{{workflow.parameters.registry}}/app:{{steps.build.outputs.result}}",
          },
        }],
      },
      images: ["{{workflow.parameters.registry}}/app:{{steps.build.outputs.result}}"],
    },
    {
      name: "an expression",
      spec: {
        arguments: { parameters: [{ name: "tag", value: "1" }] },
        templates: [{ name: "a", container: { image: "app:{{=workflow.parameters.tag}}" } }],
      },
      images: ["app:{{=workflow.parameters.tag}}"],
    },
    {
      name: "a parameter whose value is itself a placeholder",
      spec: {
        arguments: { parameters: [{ name: "tag", value: "{{workflow.name}}" }] },
        templates: [{ name: "a", container: { image: "app:{{workflow.parameters.tag}}" } }],
      },
      images: ["app:{{workflow.parameters.tag}}"],
    },
    {
      name: "a caller passing nothing usable, next to one passing a value",
      spec: {
        templates: [
          {
            name: "main",
            steps: [[
              {
                name: "a",
                template: "run",
                arguments: { parameters: [{ name: "image", value: "alpine:3.20" }] },
              },
              {
                name: "b",
                template: "run",
                arguments: {
                  parameters: [{ name: "image", value: "{{steps.x.outputs.parameters.image}}" }],
                },
              },
            ]],
          },
          {
            name: "run",
            inputs: { parameters: [{ name: "image" }] },
            container: { image: "{{inputs.parameters.image}}" },
          },
        ],
      },
      images: ["alpine:3.20", "{{inputs.parameters.image}}"],
    },
  ]);
});

Deno.test("imagesFromWorkflowSpec() tolerates odd steps and parameters Argo ignores", async (t) => {
  const cases: Case[] = [
    {
      name: "null images fall back or are absent",
      spec: {
        templates: [
          { name: "a", container: { image: null } },
          { name: "e", sidecars: [{ image: null }, null, { image: "redis:7" }] },
        ],
      },
      images: ["redis:7"],
    },
    {
      name: "wrongly shaped steps and tasks",
      spec: {
        templates: [
          { name: "a", steps: "x" },
          {
            name: "b",
            steps: [null, 1, [null, "y", { inline: "z" }], {
              inline: { container: { image: "a:1" } },
            }],
          },
          { name: "c", dag: { tasks: { name: "t" } } },
          { name: "d", dag: [] },
        ],
      },
      images: ["a:1"],
    },
    {
      name: "wrongly shaped parameters",
      spec: {
        arguments: { parameters: [null, { name: 1 }, { name: "x", value: { a: 1 } }] },
        templates: [{
          name: "a",
          inputs: { parameters: "nope" },
          container: { image: "app:{{workflow.parameters.x}}" },
        }],
      },
      images: ["app:{{workflow.parameters.x}}"],
    },
  ];
  await runCases(t, cases);
});

Deno.test("imagesFromWorkflowSpec() reports an image written as an empty string", () => {
  const images = imagesFromWorkflowSpec({
    templates: [
      { name: "a", container: { image: "" } },
      { name: "b", sidecars: [{ name: "s", image: "" }] },
    ],
  });
  assertEquals(sorted(images), [""]);
  // A default fills an empty image, as Argo's merge drops empty fields.
  const filled = imagesFromWorkflowSpec({
    templateDefaults: { container: { image: "alpine:3.20" } },
    templates: [{ name: "a", container: { image: "" } }],
  });
  assertEquals(sorted(filled), ["alpine:3.20"]);
});

/** A WorkflowTemplate `wf/t` with the given spec. */
function tpl(spec: unknown) {
  return { metadata: { namespace: "wf", name: "t" }, spec };
}

function nested(depth: number): Record<string, unknown> {
  let template: Record<string, unknown> = { container: { image: "alpine" } };
  for (let i = 0; i < depth; i++) template = { steps: [[{ name: `s${i}`, inline: template }]] };
  return { name: "deep", ...template };
}

Deno.test("imagesFromWorkflowTemplate() rejects objects Argo could not decode, naming the object and field", async (t) => {
  const cases: [string, () => unknown, string][] = [
    [
      "no spec",
      () => imagesFromWorkflowTemplate({ metadata: { namespace: "wf", name: "t" } }),
      'WorkflowTemplate "wf/t": spec is missing',
    ],
    [
      "a spec that is a string",
      () => imagesFromWorkflowTemplate(tpl("x")),
      'WorkflowTemplate "wf/t": spec is a string, expected a map',
    ],
    [
      "null templates",
      () => imagesFromWorkflowTemplate(tpl({ templates: null })),
      'WorkflowTemplate "wf/t": spec.templates is null, expected a list of templates',
    ],
    [
      "templates not a list",
      () =>
        imagesFromClusterWorkflowTemplate({ metadata: { name: "c" }, spec: { templates: "x" } }),
      'ClusterWorkflowTemplate "c": spec.templates is a string, expected a list of templates',
    ],
    [
      "no templates",
      () => imagesFromWorkflowTemplate(tpl({})),
      'WorkflowTemplate "wf/t": spec.templates is missing',
    ],
    [
      "a CronWorkflow without a workflowSpec",
      () => imagesFromCronWorkflow(tpl({ schedule: "* * * * *" })),
      'CronWorkflow "wf/t": spec.workflowSpec is missing',
    ],
    [
      "a template that is not a map",
      () => imagesFromWorkflowTemplate(tpl({ templates: [{ name: "a" }, 5] })),
      'WorkflowTemplate "wf/t": spec.templates[1] is a number, expected a template',
    ],
    [
      "an image that is a number",
      () =>
        imagesFromWorkflowTemplate(
          tpl({ templates: [{ name: "a", container: { image: 5 } }] }),
        ),
      'WorkflowTemplate "wf/t": template "a": container.image is a number, expected an image reference',
    ],
    [
      "an image that is a map",
      () =>
        imagesFromWorkflowTemplate(
          tpl({ templates: [{ name: "a", script: { image: { repo: "x" } } }] }),
        ),
      'WorkflowTemplate "wf/t": template "a": script.image is a map, expected an image reference',
    ],
    [
      "a sidecar image that is a list",
      () =>
        imagesFromWorkflowTemplate(
          tpl({ templates: [{ name: "a", sidecars: [{ name: "s", image: ["x"] }] }] }),
        ),
      'WorkflowTemplate "wf/t": template "a": sidecars[0].image is a list, expected an image reference',
    ],
    [
      "a container that is a string",
      () => imagesFromWorkflowTemplate(tpl({ templates: [{ name: "a", container: "alpine" }] })),
      'WorkflowTemplate "wf/t": template "a": container is a string, expected a map',
    ],
    [
      "sidecars that are not a list",
      () =>
        imagesFromWorkflowTemplate(
          tpl({ templates: [{ name: "a", sidecars: { image: "x" } }] }),
        ),
      'WorkflowTemplate "wf/t": template "a": sidecars is a map, expected a list',
    ],
    [
      "a containerSet container that is a string",
      () =>
        imagesFromWorkflowTemplate(
          tpl({ templates: [{ name: "a", containerSet: { containers: ["alpine"] } }] }),
        ),
      'WorkflowTemplate "wf/t": template "a": containerSet.containers[0] is a string, expected a map',
    ],
    [
      "an inline template's image that is a boolean",
      () =>
        imagesFromWorkflowTemplate(tpl({
          templates: [{
            name: "a",
            steps: [[{ name: "s", inline: { container: { image: true } } }]],
          }],
        })),
      'WorkflowTemplate "wf/t": template "a", step "s", inline: container.image is a boolean, expected an image reference',
    ],
    [
      "a templateDefaults image that is a number",
      () =>
        imagesFromWorkflowTemplate(tpl({
          templateDefaults: { container: { image: 7 } },
          templates: [{ name: "a", container: {} }],
        })),
      'WorkflowTemplate "wf/t": spec.templateDefaults: container.image is a number, expected an image reference',
    ],
    [
      "inline templates 300 deep",
      () => imagesFromWorkflowTemplate(tpl({ templates: [nested(300)] })),
      `WorkflowTemplate "wf/t": template "deep": inline templates nest deeper than 32 levels (limit MAX_INLINE_DEPTH = 32)`,
    ],
  ];
  for (const [name, read, message] of cases) {
    await t.step(name, () => {
      let error: unknown;
      try {
        read();
      } catch (e) {
        error = e;
      }
      assert(error instanceof TypeError || error instanceof ObjectLimitError, String(error));
      assertEquals((error as Error).message, message);
    });
  }
  await t.step("inline templates 32 deep are read", () => {
    assertEquals(sorted(imagesFromWorkflowTemplate(tpl({ templates: [nested(32)] }))), [
      "alpine",
    ]);
  });
  await t.step("a CronWorkflow that runs a template by reference has no images", () => {
    assertEquals(
      sorted(
        imagesFromCronWorkflow(tpl({ workflowSpec: { workflowTemplateRef: { name: "ci" } } })),
      ),
      [],
    );
  });
});

/** Reads a spec, returning the images or the error, and the work done either way. */
function measure(spec: unknown): { images?: Set<string>; error?: unknown; work: ArgoWork } {
  const work: ArgoWork = { operations: 0, characters: 0, longest: 0 };
  try {
    return { images: imagesFromWorkflowSpec(spec, { work }), work };
  } catch (error) {
    return { error, work };
  }
}

function assertWithinBounds(work: ArgoWork): void {
  assert(work.operations <= MAX_WORK, `operations ${work.operations}`);
  assert(work.characters <= MAX_CHARACTERS, `characters ${work.characters}`);
  assert(work.longest <= MAX_EXPANDED_LENGTH, `longest ${work.longest}`);
}

function assertLimit(
  result: { error?: unknown; work: ArgoWork },
  limit: string,
  where: string,
): void {
  assert(
    result.error instanceof ObjectLimitError,
    `expected ObjectLimitError, got ${result.error}`,
  );
  assertEquals(result.error.limit, limit);
  assertEquals(result.error.where, where);
  assert(result.error.message.includes(`limit ${limit} = `), result.error.message);
  assertWithinBounds(result.work);
}

const param = (name: string, value: string) => ({ name, value });
const calls = (
  template: string,
  args: Record<string, string>,
  extra: Record<string, unknown> = {},
) => ({
  name: "again",
  template,
  arguments: { parameters: Object.entries(args).map(([k, v]) => param(k, v)) },
  ...extra,
});

Deno.test("imagesFromWorkflowSpec() rejects hostile objects at a named limit, with bounded work", async (t) => {
  await t.step(
    "a template calling itself with a doubling parameter (crashed the daemon)",
    async () => {
      const result = measure({
        entrypoint: "grow",
        templates: [{
          name: "grow",
          inputs: { parameters: [{ name: "p", value: "x" }] },
          container: { image: "alpine:{{inputs.parameters.p}}" },
          steps: [[calls("grow", { p: "{{inputs.parameters.p}}{{inputs.parameters.p}}" })]],
        }],
      });
      // Its own `value` wins over what is passed, so this one converges: Argo's precedence.
      assertEquals(sorted(result.images!), ["alpine:x"]);
      const hostile = measure(
        ((await hostileFixture("doubling.workflowtemplate.yaml")) as { spec: unknown }).spec,
      );
      // The image, built before the next call, is the first string past the limit.
      assertLimit(hostile, "MAX_EXPANDED_LENGTH", 'template "grow"');
      assert(hostile.work.operations < 1_000, `${hostile.work.operations} operations`);
    },
  );
  await t.step("mutual recursion doubling across two templates", () => {
    const template = (name: string, next: string) => ({
      name,
      inputs: { parameters: [{ name: "p" }] },
      sidecars: [{ name: "s", image: "app:{{inputs.parameters.p}}" }],
      steps: [[calls(next, { p: "{{inputs.parameters.p}}{{inputs.parameters.p}}" })]],
    });
    const result = measure({
      entrypoint: "a",
      arguments: { parameters: [param("p", "ab")] },
      templates: [template("a", "b"), template("b", "a")],
    });
    assert(result.error instanceof ObjectLimitError);
    assertEquals(result.error.limit, "MAX_EXPANDED_LENGTH");
    assertWithinBounds(result.work);
  });
  await t.step("withSequence with a huge format width (crashed the daemon)", async () => {
    const crash = measure(
      ((await hostileFixture("huge-format.workflowtemplate.yaml")) as { spec: unknown }).spec,
    );
    assertLimit(crash, "MAX_SEQUENCE_WIDTH", 'template "pad", step "s"');
    // Even when nothing reads the item: Argo would build the strings.
    const unused = measure({
      templates: [{
        name: "seq",
        steps: [[{
          name: "pad",
          withSequence: { count: "3", format: "%0999999999d" },
          inline: { container: { image: "app:1" } },
        }]],
      }],
    });
    assertLimit(unused, "MAX_SEQUENCE_WIDTH", 'template "seq", step "pad"');
    assert(crash.work.operations < 100 && unused.work.operations < 100);
  });
  await t.step("withSequence counts past the bound, when the item is used", () => {
    for (const sequence of [{ count: "999999999" }, { start: "-999999999", end: "999999999" }]) {
      const result = measure({
        templates: [{
          name: "seq",
          dag: {
            tasks: [{
              name: "t",
              withSequence: sequence,
              inline: { script: { image: "a:{{item}}" } },
            }],
          },
        }],
      });
      assertLimit(result, "MAX_LOOP_ITEMS", 'template "seq", step "t"');
      assert(result.work.operations < 100);
    }
  });
  await t.step("numbers too large to be integers make the item unknown, not a loop", () => {
    const result = measure({
      templates: [{
        name: "seq",
        steps: [[{
          name: "s",
          withSequence: { count: "1e308", start: "99999999999999999999" },
          inline: { container: { image: "a:{{item}}" } },
        }]],
      }],
    });
    assertEquals(sorted(result.images!), ["a:{{item}}"]);
  });
  await t.step("a huge loop whose item nothing reads is read once", () => {
    const result = measure({
      entrypoint: "main",
      templates: [
        {
          name: "main",
          steps: [[{ name: "many", withSequence: { count: "999999999" }, template: "plain" }]],
        },
        { name: "plain", container: { image: "plain:1" } },
      ],
    });
    assertEquals(sorted(result.images!), ["plain:1"]);
    assert(result.work.operations < 100, `${result.work.operations} operations`);
  });
  /** 300 steps of 256 items each calling `plain`; `passItem` passes each item on. */
  const manySteps = (passItem: boolean) => {
    const items = Array.from({ length: 256 }, (_, i) => String(i));
    return measure({
      entrypoint: "main",
      templates: [
        {
          name: "main",
          steps: Array.from({ length: 300 }, (_, i) => [{
            name: `s${i}`,
            withItems: items,
            template: "plain",
            ...(passItem ? { arguments: { parameters: [param("x", `${i}-{{item}}`)] } } : {}),
          }]),
        },
        { name: "plain", inputs: { parameters: [{ name: "x" }] }, container: { image: "plain:1" } },
      ],
    });
  };
  await t.step(
    "many withItems steps and one plain template yield the image (was silently empty)",
    () => {
      assertEquals(sorted(manySteps(false).images!), ["plain:1"]);
    },
  );
  await t.step(
    "many withItems steps whose item is passed on overrun the work budget, reported",
    () => {
      const result = manySteps(true);
      assert(result.error instanceof ObjectLimitError, String(result.error));
      assert(["MAX_WORK", "MAX_CALL_BINDINGS"].includes(result.error.limit), result.error.limit);
      assertWithinBounds(result.work);
    },
  );
  await t.step("a loop of exactly MAX_LOOP_ITEMS passing each item to a template is read", () => {
    const items = Array.from({ length: MAX_LOOP_ITEMS }, (_, i) => `v${i}`);
    const result = measure({
      entrypoint: "main",
      templates: [
        {
          name: "main",
          steps: [[{
            name: "fan",
            withItems: items,
            template: "leaf",
            arguments: { parameters: [param("n", "{{item}}")] },
          }]],
        },
        {
          name: "leaf",
          inputs: { parameters: [{ name: "n" }] },
          container: { image: "app:{{inputs.parameters.n}}" },
        },
      ],
    });
    assert(result.images, String(result.error));
    assertEquals(result.images.size, MAX_LOOP_ITEMS);
    const inline = measure({
      templates: [{
        name: "main",
        steps: [[{
          name: "fan",
          withItems: items,
          inline: { container: { image: "a:{{item}}" } },
        }]],
      }],
    });
    assertEquals(inline.images?.size, MAX_LOOP_ITEMS);
  });
  await t.step("a withItems list past the bound", () => {
    const result = measure({
      templates: [{
        name: "main",
        steps: [[{
          name: "a",
          withItems: Array.from({ length: 100_000 }, (_, i) => String(i)),
          inline: { container: { image: "app:{{item}}" } },
        }]],
      }],
    });
    assertLimit(result, "MAX_LOOP_ITEMS", 'template "main", step "a"');
  });
  await t.step("nested withItems whose product passes the budget", () => {
    const items = Array.from({ length: 2_000 }, (_, i) => String(i));
    const result = measure({
      entrypoint: "outer",
      templates: [
        {
          name: "outer",
          steps: [[{
            name: "o",
            withItems: items,
            template: "inner",
            arguments: { parameters: [param("x", "{{item}}")] },
          }]],
        },
        {
          name: "inner",
          inputs: { parameters: [{ name: "x" }] },
          steps: [[{
            name: "i",
            withItems: items,
            inline: { container: { image: "app:{{inputs.parameters.x}}-{{item}}" } },
          }]],
        },
      ],
    });
    assertLimit(result, "MAX_WORK", 'template "inner", step "i", inline');
  });
  await t.step("a parameter growing by one character per recursive call", () => {
    const result = measure({
      entrypoint: "a",
      templates: [{
        name: "a",
        inputs: { parameters: [{ name: "n", default: "0" }] },
        steps: [[calls("a", { n: "{{inputs.parameters.n}}1" })]],
        sidecars: [{ name: "s", image: "app:{{inputs.parameters.n}}" }],
      }],
    });
    assert(result.error instanceof ObjectLimitError);
    assert(["MAX_CHARACTERS", "MAX_CALL_BINDINGS"].includes(result.error.limit));
    assertWithinBounds(result.work);
  });
  await t.step("DAG fan-out: a binary tree of distinct calls 30 deep", () => {
    const templates = Array.from({ length: 30 }, (_, i) => ({
      name: `t${i}`,
      inputs: { parameters: [{ name: "p", default: "" }] },
      container: { image: "x:{{inputs.parameters.p}}" },
      dag: {
        tasks: ["l", "r"].map((side) => ({
          name: side,
          template: `t${i + 1}`,
          arguments: { parameters: [param("p", `{{inputs.parameters.p}}${side}`)] },
        })),
      },
    }));
    const result = measure({ entrypoint: "t0", templates });
    assert(result.error instanceof ObjectLimitError);
    assert(["MAX_WORK", "MAX_CALL_BINDINGS"].includes(result.error.limit));
    assertWithinBounds(result.work);
  });
  await t.step("a long string through parameter concatenation in templateDefaults sidecars", () => {
    const result = measure({
      entrypoint: "a",
      arguments: { parameters: [param("big", "x".repeat(40_000))] },
      templateDefaults: {
        sidecars: [{ name: "d", image: "{{workflow.parameters.big}}{{workflow.parameters.big}}" }],
      },
      templates: [{ name: "a", container: { image: "alpine" } }],
    });
    assertLimit(result, "MAX_EXPANDED_LENGTH", 'template "a"');
  });
  await t.step("a huge item object stringified as {{item}}", () => {
    const result = measure({
      templates: [{
        name: "a",
        steps: [[{
          name: "s",
          withItems: [{ blob: "y".repeat(100_000) }],
          inline: { containerSet: { containers: [{ name: "c", image: "{{item}}" }] } },
        }]],
      }],
    });
    assertLimit(result, "MAX_EXPANDED_LENGTH", 'template "a", step "s", inline');
  });
  await t.step("unicode in placeholders and names is read, not mangled", () => {
    const result = measure({
      entrypoint: "ü",
      arguments: { parameters: [param("タグ", "3.20")] },
      templates: [{ name: "ü", container: { image: "alpine:{{workflow.parameters.タグ}}" } }],
    });
    assertEquals(sorted(result.images!), ["alpine:3.20"]);
  });
  /** A loop of 1,000 items, each calling `leaf` with its item as `n`. */
  const fanOut = (leaf: Record<string, unknown>) =>
    measure({
      entrypoint: "main",
      templates: [
        {
          name: "main",
          steps: [[{
            name: "fan",
            withItems: Array.from({ length: 1_000 }, (_, i) => String(i)),
            template: "leaf",
            arguments: { parameters: [param("n", "{{item}}")] },
          }]],
        },
        { name: "leaf", ...leaf },
      ],
    });
  await t.step("a long literal parameter read on every call is scanned once", () => {
    const long = "y".repeat(500_000);
    const result = fanOut({
      inputs: { parameters: [{ name: "n" }, { name: "blob", default: long }] },
      container: { image: "app:{{inputs.parameters.n}}" },
    });
    assertEquals(result.images!.size, 1_000);
    // Counted once (it was read), not once per call (it would pass MAX_CHARACTERS).
    assert(result.work.characters >= long.length, `${result.work.characters} characters`);
    assert(result.work.characters < 2 * long.length, `${result.work.characters} characters`);
  });
  await t.step("a long withSequence format costs its length on every evaluation", () => {
    const result = fanOut({
      inputs: { parameters: [{ name: "n" }] },
      steps: [[{
        name: "seq",
        withSequence: { count: "1", format: `%d${"z".repeat(100_000)}` },
        inline: { container: { image: "a:{{inputs.parameters.n}}" } },
      }]],
    });
    assertLimit(result, "MAX_CHARACTERS", 'template "leaf", step "seq"');
  });
  await t.step("a value passed on unchanged is not rebuilt", () => {
    const big = "z".repeat(1_000_000);
    const chain = Array.from({ length: 20 }, (_, i) => ({
      name: `t${i}`,
      inputs: { parameters: [{ name: "p" }] },
      container: { image: "alpine" },
      steps: i === 19 ? undefined : [[calls(`t${i + 1}`, { p: "{{inputs.parameters.p}}" })]],
    }));
    const result = measure({
      entrypoint: "t0",
      arguments: { parameters: [param("p", big)] },
      templates: chain,
    });
    assertEquals(sorted(result.images!), ["alpine"]);
    assert(result.work.characters < MAX_CHARACTERS, `${result.work.characters} characters`);
  });
});

/**
 * Checks one evaluation against the properties every object must have:
 * it returns or throws only the documented errors, its work stays within
 * the limits, and every image it returns is either a valid reference that
 * normalises to itself or one the dedupe map rejects with a reason.
 */
function assertWellBehaved(
  read: (work: ArgoWork) => Set<string>,
): "images" | "TypeError" | "ObjectLimitError" {
  const work: ArgoWork = { operations: 0, characters: 0, longest: 0 };
  let images: Set<string> | undefined;
  let outcome: "images" | "TypeError" | "ObjectLimitError" = "images";
  try {
    images = read(work);
  } catch (error) {
    assert(
      error instanceof TypeError || error instanceof ObjectLimitError,
      `unexpected ${error}`,
    );
    outcome = error instanceof TypeError ? "TypeError" : "ObjectLimitError";
  }
  assertWithinBounds(work);
  for (const image of images ?? []) {
    assert(typeof image === "string");
    assert(image.length <= MAX_EXPANDED_LENGTH);
    const result = tryNormalizeReference(image);
    if (result.ok) assertEquals(normalizeReference(result.ref), result.ref);
    else assert(result.reason.startsWith("Cannot parse image reference "), result.reason);
  }
  return outcome;
}

Deno.test("imagesFromWorkflowSpec() on generated Argo objects: only documented errors, bounded work, valid output", () => {
  const json: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 3 });
  const list = <T>(item: fc.Arbitrary<T>) => fc.array(item, { maxLength: 3 });
  const names = fc.constantFrom("a", "b", "c");
  const placeholder = fc.constantFrom(
    "{{inputs.parameters.image}}",
    "{{inputs.parameters.image}}{{inputs.parameters.image}}",
    "{{inputs.parameters.tag}}{{inputs.parameters.tag}}{{inputs.parameters.tag}}",
    "{{inputs.parameters.tag}}x",
    "app:{{workflow.parameters.tag}}",
    "registry.example.com/app:{{item}}",
    "{{item.image}}",
    "alpine:{{item}}-{{inputs.parameters.tag}}",
    "{{=sprig.trim(item)}}",
    "{{",
    "ünï/cödé:1",
    "alpine:3.20",
  );
  const text = fc.oneof(
    { arbitrary: placeholder, weight: 4 },
    fc.string({ maxLength: 8 }),
    fc.stringMatching(/^[a-z0-9.:/@-]{1,20}$/),
  );
  /**
   * Argo-shaped objects with calls between a, b and c (so recursion, mutual
   * or not), loops and templating. With `junk`, arbitrary JSON may stand in
   * any slot, so that wrong types are tried too.
   */
  const specOf = (junk: boolean) => {
    const slot = <T>(good: fc.Arbitrary<T>): fc.Arbitrary<unknown> =>
      junk ? fc.oneof({ arbitrary: good, weight: 3 }, json) : good;
    const container = fc.record({ name: fc.oneof(names, fc.string()), image: slot(text) }, {
      requiredKeys: [],
    });
    const parameter = fc.record(
      { name: fc.constantFrom("image", "tag", ""), value: slot(text), default: slot(text) },
      { requiredKeys: [] },
    );
    const sequence = fc.record({
      count: fc.oneof(
        { arbitrary: fc.integer({ min: -5, max: 20 }).map(String), weight: 30 },
        fc.constantFrom("999999999", "1e308", "{{inputs.parameters.tag}}"),
      ),
      start: fc.oneof(
        { arbitrary: fc.integer({ min: -5, max: 5 }), weight: 30 },
        fc.integer({ min: -1_000_000_000, max: 1_000_000_000 }),
      ),
      end: fc.integer({ min: -20, max: 20 }),
      format: fc.oneof(
        { arbitrary: fc.constantFrom("%d", "%03d", "v%d", "%05d.%d"), weight: 9 },
        fc.constant("%0999999999d"),
      ),
    }, { requiredKeys: [] });
    const items = fc.oneof(
      { arbitrary: list(fc.oneof(text, fc.record({ image: text }))), weight: 30 },
      // Just past the item bound, once in a while.
      fc.constantFrom(0, 100, 10_001).map((n) => Array.from({ length: n }, (_, i) => `t${i}`)),
    );
    const template = (depth: number): fc.Arbitrary<unknown> => {
      const step = fc.record({
        name: fc.string({ maxLength: 4 }),
        template: slot(names),
        inline: depth === 0 ? slot(fc.constant(undefined)) : slot(template(depth - 1)),
        arguments: fc.record({ parameters: list(parameter) }),
        withItems: slot(items),
        withParam: json,
        withSequence: slot(sequence),
        hooks: fc.dictionary(
          fc.string({ maxLength: 3 }),
          fc.record({ template: names, arguments: fc.record({ parameters: list(parameter) }) }),
          { maxKeys: 2 },
        ),
      }, { requiredKeys: [] });
      return fc.record({
        name: names,
        inputs: fc.record({ parameters: list(slot(parameter)) }),
        container: slot(container),
        script: slot(container),
        containerSet: fc.record({ containers: slot(list(container)) }),
        sidecars: slot(list(container)),
        initContainers: list(slot(container)),
        steps: slot(list(list(step))),
        dag: fc.record({ tasks: slot(list(step)) }),
        podSpecPatch: slot(fc.constantFrom(
          '{"containers":[{"name":"main","image":"{{inputs.parameters.image}}"}]}',
          "containers:\n  - name: extra\n    image: redis:{{inputs.parameters.tag}}\n",
          "a: &a [x, x]\nb: [*a, *a, *a]",
          "containers: [",
        )),
      }, { requiredKeys: ["name"] });
    };
    return fc.record({
      entrypoint: slot(names),
      onExit: names,
      arguments: fc.record({ parameters: slot(list(parameter)) }),
      templateDefaults: slot(template(0)),
      templates: slot(fc.array(template(2), { minLength: 1, maxLength: 4 })),
    }, { requiredKeys: ["templates"] });
  };
  const outcomes = { images: 0, TypeError: 0, ObjectLimitError: 0 };
  fc.assert(
    fc.property(fc.oneof(json, specOf(true), { arbitrary: specOf(false), weight: 3 }), (value) => {
      const outcome = assertWellBehaved((work) => imagesFromWorkflowSpec(value, { work }));
      outcomes[outcome]++;
      // The kind's wrapper only names the object; limits behave alike, so
      // (to keep the test quick) the expensive runs are not repeated.
      if (outcome === "ObjectLimitError") return;
      assertWellBehaved((work) =>
        imagesFromCronWorkflow({ metadata: { name: "c" }, spec: { workflowSpec: value } }, { work })
      );
    }),
    { numRuns: 200 },
  );
  // The generator reaches all three outcomes, so the properties are tried on each.
  assert(Object.values(outcomes).every((n) => n > 0), JSON.stringify(outcomes));
});

/** One of issue 13's crash inputs, under `integration/fixtures/argo-hostile/`. */
async function hostileFixture(name: string): Promise<unknown> {
  return parse(
    await Deno.readTextFile(
      new URL(`../integration/fixtures/argo-hostile/${name}`, import.meta.url),
    ),
  );
}

async function fixture(name: string): Promise<unknown> {
  return parse(
    await Deno.readTextFile(new URL(`../integration/fixtures/argo/${name}`, import.meta.url)),
  );
}

Deno.test("imagesFromWorkflowTemplate() and friends read the Argo fixtures", async (t) => {
  const cases: { file: string; read: (obj: unknown) => Set<string>; images: string[] }[] = [
    {
      file: "ci-pipeline.workflowtemplate.yaml",
      read: imagesFromWorkflowTemplate,
      images: [
        "alpine/git:2.45.2",
        "curlimages/curl:8.8.0",
        "gcr.io/kaniko-project/executor:v1.23.0",
        "golang:1.22",
        "golangci/golangci-lint:v1.59.1",
        "postgres:16-alpine",
        "python:3.12-slim",
      ],
    },
    {
      file: "dag-matrix.workflowtemplate.yaml",
      read: imagesFromWorkflowTemplate,
      images: [
        "aquasec/trivy:0.53.0",
        "busybox:1.36",
        "debian:bookworm-slim",
        "maven:3.9-eclipse-temurin-21",
        "python:3.10-slim",
        "python:3.11-slim",
        "python:3.12-alpine",
        "python:3.12-slim",
        "ubuntu:24.04",
        "{{inputs.parameters.image}}",
      ],
    },
    {
      file: "shared-defaults.clusterworkflowtemplate.yaml",
      read: imagesFromClusterWorkflowTemplate,
      images: [
        "fluent/fluent-bit:3.0",
        "fluent/fluent-bit:3.1",
        "node:20-alpine",
        "python:3.11-slim",
        "registry.example.com/base/runner:2.1",
      ],
    },
    {
      file: "nightly-etl.cronworkflow.yaml",
      read: imagesFromCronWorkflow,
      images: [
        "ghcr.io/acme/etl:2024.06",
        "ghcr.io/groundnuty/k8s-wait-for:v2.0",
        "{{workflow.parameters.report-image}}",
      ],
    },
  ];
  for (const c of cases) {
    await t.step(c.file, async () => {
      assertEquals(sorted(c.read(await fixture(c.file))), c.images);
    });
  }
});

Deno.test("imagesFromCronWorkflow() reads spec.workflowSpec, not spec", () => {
  const workflowSpec = { templates: [{ name: "a", container: { image: "alpine:3.20" } }] };
  const meta = { namespace: "wf", name: "c" };
  assertEquals(sorted(imagesFromCronWorkflow({ metadata: meta, spec: { workflowSpec } })), [
    "alpine:3.20",
  ]);
  assertThrows(
    () => imagesFromCronWorkflow({ metadata: meta, spec: workflowSpec }),
    TypeError,
    'CronWorkflow "wf/c": spec.workflowSpec is missing',
  );
  assertThrows(
    () => imagesFromWorkflowTemplate({ metadata: meta, spec: { workflowSpec } }),
    TypeError,
    'WorkflowTemplate "wf/c": spec.templates is missing',
  );
  assertThrows(
    () => imagesFromCronWorkflow({ metadata: meta, spec: null }),
    TypeError,
    'CronWorkflow "wf/c": spec is missing',
  );
});

Deno.test("imagesFromWorkflowSpec() reads images from podSpecPatch as Argo patches the pod", async (t) => {
  const main = (image: string, extra: Record<string, unknown> = {}) => ({
    name: "a",
    container: { image },
    ...extra,
  });
  /** A JSON patch setting the image of the `main` container. */
  const mainPatch = (image: string) => `{"containers":[{"name":"main","image":"${image}"}]}`;
  /** A spec of one `alpine:3.20` container template with this patch. */
  const patched = (podSpecPatch: string, extra: Record<string, unknown> = {}) => ({
    templates: [main("alpine:3.20", { podSpecPatch, ...extra })],
  });
  await runCases(t, [
    {
      name: "a JSON patch replaces the main container's image",
      spec: patched(mainPatch("busybox:1.36")),
      images: ["busybox:1.36"],
    },
    {
      name: "a YAML patch adds containers and init containers, and patches a sidecar by name",
      spec: patched(
        [
          "initContainers:",
          "  - name: fetch",
          "    image: curlimages/curl:8.8.0",
          "containers:",
          "  - name: proxy",
          "    image: envoy:1.31",
          "  - name: extra",
          "    image: redis:7.2",
          "  - name: main",
          "    resources: {limits: {memory: 1Gi}}",
        ].join("\n"),
        { sidecars: [{ name: "proxy", image: "envoy:1.30" }] },
      ),
      images: ["alpine:3.20", "curlimages/curl:8.8.0", "envoy:1.31", "redis:7.2"],
    },
    {
      name: "the workflow's patch applies first, the template's wins",
      spec: {
        podSpecPatch: mainPatch("from-workflow:1"),
        templates: [
          main("alpine:3.20", {
            podSpecPatch: mainPatch("from-template:1"),
          }),
          { name: "b", script: { image: "python:3.12", source: "print(1)" } },
        ],
      },
      images: ["from-template:1", "from-workflow:1"],
    },
    {
      name: "templateDefaults' patch applies to templates without their own",
      spec: {
        templateDefaults: { podSpecPatch: mainPatch("default:1") },
        templates: [main("alpine:3.20")],
      },
      images: ["default:1"],
    },
    {
      name: "a templated patch is resolved from the template's inputs",
      spec: patched(mainPatch("{{inputs.parameters.img}}"), {
        inputs: { parameters: [{ name: "img", default: "nginx:1.27" }] },
      }),
      images: ["nginx:1.27"],
    },
    {
      name: "a patch with a placeholder not known offline is not read",
      spec: patched(mainPatch("{{steps.pick.outputs.result}}")),
      images: ["alpine:3.20"],
    },
    {
      name: "a patch of resources only leaves the images alone",
      spec: patched("containers:\n  - name: main\n    resources: {limits: {cpu: 2}}\n"),
      images: ["alpine:3.20"],
    },
    {
      name: "a template that runs no pod is not patched",
      spec: {
        podSpecPatch: '{"containers":[{"name":"extra","image":"never:1"}]}',
        templates: [{ name: "s", steps: [[{ name: "x", template: "elsewhere" }]] }],
      },
      images: [],
    },
  ]);
  await t.step("a patch that cannot be read rejects the object, naming the template", () => {
    const cases: [unknown, string][] = [
      ["containers: [", 'template "a": podSpecPatch is not valid JSON or YAML: '],
      [{ containers: [] }, 'template "a": podSpecPatch is a map, expected a string'],
      ['"just text"', 'template "a": podSpecPatch is a string, expected a pod spec'],
      [
        '{"containers":[{"name":"main","image":5}]}',
        'template "a", podSpecPatch: containers[0].image is a number, expected an image reference',
      ],
    ];
    for (const [patch, message] of cases) {
      const error = assertThrows(
        () => imagesFromWorkflowSpec({ templates: [main("alpine", { podSpecPatch: patch })] }),
        TypeError,
      );
      assert(error.message.startsWith(message), error.message);
    }
  });
});

Deno.test("imagesFromWorkflowSpec() bounds the YAML read from podSpecPatch per object", async (t) => {
  const yamlPatch = (image: string, padding: number) =>
    `# ${"x".repeat(padding)}\ncontainers:\n  - name: main\n    image: ${image}\n`;
  const template = (podSpecPatch: string, extra: Record<string, unknown> = {}) => ({
    name: "a",
    container: { image: "alpine:3.20" },
    podSpecPatch,
    ...extra,
  });
  await t.step("a YAML patch under the limit is read", () => {
    const { images } = measure({ templates: [template(yamlPatch("busybox:1.36", 20_000))] });
    assertEquals(sorted(images!), ["busybox:1.36"]);
  });
  await t.step("a 1 MB YAML patch is rejected (before: 7 s in the YAML parser)", () => {
    const patch = "containers:\n" + "- name: x\n  image: alpine:3\n".repeat(40_000);
    assertLimit(
      measure({ templates: [template(patch)] }),
      "MAX_YAML_TOKENS",
      'template "a", podSpecPatch',
    );
  });
  await t.step(
    "a JSON patch of 20,000 containers is read (the merge by name was quadratic: 1 s)",
    () => {
      const containers = Array.from(
        { length: 20_000 },
        (_, i) => ({ name: `c${i}`, image: "redis:7" }),
      );
      const { images, error } = measure({
        templates: [template(JSON.stringify({ containers }))],
      });
      assertEquals(error, undefined);
      assertEquals(sorted(images!), ["alpine:3.20", "redis:7"]);
    },
  );
  await t.step("distinct YAML patches from a loop count together against the limit", () => {
    // Each text is short, but every item makes another one for the parser.
    const result = measure({
      entrypoint: "main",
      templates: [
        {
          name: "main",
          steps: [[{
            name: "each",
            template: "a",
            withItems: Array.from({ length: 1_000 }, (_, i) => `v${i}`),
            arguments: { parameters: [{ name: "tag", value: "{{item}}" }] },
          }]],
        },
        template(yamlPatch("busybox:{{inputs.parameters.tag}}", 1_000), {
          inputs: { parameters: [{ name: "tag" }] },
        }),
      ],
    });
    assertLimit(result, "MAX_YAML_TOKENS", 'template "a", podSpecPatch');
  });
  await t.step(
    "a YAML patch nested thousands deep is rejected at a limit, not a stack overflow",
    () => {
      const patch = "containers: " + "[".repeat(10_000);
      assertLimit(
        measure({ templates: [template(patch)] }),
        "MAX_YAML_DEPTH",
        'template "a", podSpecPatch',
      );
    },
  );
});
