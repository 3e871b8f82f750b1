import fc from "fast-check";
import { parse } from "yaml";
import { assert, assertEquals } from "../testing/assert.ts";
import {
  imagesFromClusterWorkflowTemplate,
  imagesFromCronWorkflow,
  imagesFromWorkflowSpec,
  imagesFromWorkflowTemplate,
  MAX_INLINE_DEPTH,
} from "./argo_images.ts";

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

Deno.test("imagesFromWorkflowSpec() never throws on malformed objects", async (t) => {
  const cases: Case[] = [
    { name: "undefined", spec: undefined, images: [] },
    { name: "null", spec: null, images: [] },
    { name: "a string", spec: "templates", images: [] },
    { name: "a list", spec: [{ container: { image: "x" } }], images: [] },
    { name: "null templates", spec: { templates: null }, images: [] },
    { name: "templates not a list", spec: { templates: { a: 1 } }, images: [] },
    {
      name: "junk among templates",
      spec: { templates: [null, 1, "x", [], { container: { image: "alpine:3.20" } }] },
      images: ["alpine:3.20"],
    },
    {
      name: "non-string and empty images are skipped",
      spec: {
        templates: [
          { name: "a", container: { image: 5 } },
          { name: "b", container: { image: "" } },
          { name: "c", container: "alpine" },
          { name: "d", script: { image: ["x"] } },
          { name: "e", sidecars: [{ image: null }, "x", { image: "redis:7" }] },
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

Deno.test("imagesFromWorkflowSpec() stays bounded on hostile input", async (t) => {
  await t.step("inline nesting deeper than the bound", () => {
    let inline: Record<string, unknown> = { container: { image: "deepest:1" } };
    for (let depth = 0; depth < 10_000; depth++) {
      inline = {
        container: { image: `level:${depth}` },
        steps: [[{ name: "s", inline }]],
      };
    }
    const images = imagesFromWorkflowSpec({ templates: [{ name: "top", ...inline }] });
    assert(images.has("level:9999"));
    assert(!images.has("deepest:1"));
    assertEquals(images.size, MAX_INLINE_DEPTH + 1);
  });
  await t.step("a huge withItems list", () => {
    const images = imagesFromWorkflowSpec({
      templates: [{
        name: "main",
        steps: [[{
          name: "a",
          withItems: Array.from({ length: 100_000 }, (_, i) => String(i)),
          inline: { container: { image: "app:{{item}}" } },
        }]],
      }],
    });
    assert(images.size < 1_000);
    assert(images.has("app:0"));
    assert(images.has("app:{{item}}"), "items beyond the bound are reported as written");
  });
  await t.step("templates that call each other forever", () => {
    const images = imagesFromWorkflowSpec({
      entrypoint: "a",
      templates: [
        {
          name: "a",
          inputs: { parameters: [{ name: "n", default: "0" }] },
          steps: [[{
            name: "again",
            template: "a",
            arguments: { parameters: [{ name: "n", value: "{{inputs.parameters.n}}1" }] },
          }]],
          sidecars: [{ name: "s", image: "app:{{inputs.parameters.n}}" }],
        },
      ],
    });
    assert(images.has("app:0"));
    assert(images.size <= 100);
  });
});

Deno.test("imagesFromWorkflowSpec() never throws on arbitrary JSON", () => {
  const json: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 3 });
  const list = <T>(item: fc.Arbitrary<T>) => fc.array(item, { maxLength: 3 });
  const container = fc.record({ name: fc.string(), image: json }, { requiredKeys: [] });
  const parameter = fc.record(
    { name: fc.constantFrom("image", "tag", ""), value: json, default: json },
    { requiredKeys: [] },
  );
  const placeholder = fc.constantFrom(
    "{{inputs.parameters.image}}",
    "app:{{workflow.parameters.tag}}",
    "{{item}}",
    "{{item.tag}}",
    "{{",
  );
  // Argo-shaped values down to a fixed depth, arbitrary JSON in every slot.
  const template = (depth: number): fc.Arbitrary<unknown> => {
    const step = depth === 0 ? json : fc.record({
      name: fc.string(),
      template: fc.oneof(fc.constantFrom("a", "b"), json),
      inline: fc.oneof(json, template(depth - 1)),
      arguments: fc.record({ parameters: list(parameter) }),
      withItems: fc.oneof(json, list(fc.oneof(placeholder, json))),
      withParam: json,
      withSequence: json,
    }, { requiredKeys: [] });
    return fc.record({
      name: fc.constantFrom("a", "b", "c"),
      inputs: fc.record({ parameters: list(fc.oneof(parameter, json)) }),
      container: fc.oneof(container, json, fc.record({ image: placeholder })),
      script: fc.oneof(container, json),
      containerSet: fc.record({ containers: list(container) }),
      sidecars: fc.oneof(list(container), json),
      initContainers: list(fc.oneof(container, json)),
      steps: fc.oneof(json, list(list(step))),
      dag: fc.record({ tasks: fc.oneof(list(step), json) }),
    }, { requiredKeys: [] });
  };
  const spec = fc.record({
    entrypoint: fc.oneof(fc.constantFrom("a", "b"), json),
    arguments: fc.record({ parameters: fc.oneof(list(parameter), json) }),
    templateDefaults: fc.oneof(template(0), json),
    templates: fc.oneof(list(template(2)), json),
  }, { requiredKeys: [] });
  fc.assert(
    fc.property(fc.oneof(json, spec), (value) => {
      const images = imagesFromWorkflowSpec(value);
      for (const image of images) assert(typeof image === "string");
      imagesFromCronWorkflow({ spec: { workflowSpec: value } });
    }),
    { numRuns: 200 },
  );
});

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
  assertEquals(sorted(imagesFromCronWorkflow({ spec: { workflowSpec } })), ["alpine:3.20"]);
  assertEquals(sorted(imagesFromCronWorkflow({ spec: workflowSpec })), []);
  assertEquals(sorted(imagesFromWorkflowTemplate({ spec: { workflowSpec } })), []);
  assertEquals(sorted(imagesFromCronWorkflow({ spec: null })), []);
});
