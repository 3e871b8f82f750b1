import { assertEquals } from "../testing/assert.ts";
import { argoObjectProblem } from "./argo.ts";

const meta = { namespace: "wf", name: "t" };

function nested(depth: number): Record<string, unknown> {
  let template: Record<string, unknown> = { container: { image: "alpine" } };
  for (let i = 0; i < depth; i++) template = { steps: [[{ name: `s${i}`, inline: template }]] };
  return { name: "deep", ...template };
}

Deno.test("argoObjectProblem() names what is wrong with an Argo object's shape", async (t) => {
  const cases: [string, Parameters<typeof argoObjectProblem>, string | undefined][] = [
    ["a sound template", ["workflowtemplate", {
      metadata: meta,
      spec: { templates: [{ name: "a", container: { image: "alpine" } }] },
    }], undefined],
    [
      "no spec",
      ["workflowtemplate", { metadata: meta }],
      'WorkflowTemplate "wf/t": spec is missing',
    ],
    [
      "null templates",
      ["workflowtemplate", { metadata: meta, spec: { templates: null } }],
      'WorkflowTemplate "wf/t": spec.templates is null, expected a list of templates',
    ],
    [
      "templates not a list",
      ["clusterworkflowtemplate", { metadata: { name: "c" }, spec: { templates: "x" } }],
      'ClusterWorkflowTemplate "c": spec.templates is a string, expected a list of templates',
    ],
    [
      "no templates",
      ["workflowtemplate", { metadata: meta, spec: {} }],
      'WorkflowTemplate "wf/t": spec.templates is missing',
    ],
    ["a CronWorkflow that runs a template by reference", ["cronworkflow", {
      metadata: meta,
      spec: { workflowSpec: { workflowTemplateRef: { name: "ci" } } },
    }], undefined],
    [
      "a CronWorkflow without a workflowSpec",
      ["cronworkflow", { metadata: meta, spec: { schedule: "* * * * *" } }],
      'CronWorkflow "wf/t": spec.workflowSpec is missing',
    ],
    [
      "a template that is not an object",
      ["workflowtemplate", { metadata: meta, spec: { templates: [{ name: "a" }, 5] } }],
      'WorkflowTemplate "wf/t": spec.templates[1] is a number, expected a template',
    ],
    ["inline templates 32 deep", ["workflowtemplate", {
      metadata: meta,
      spec: { templates: [nested(32)] },
    }], undefined],
    [
      "inline templates 300 deep",
      ["workflowtemplate", { metadata: meta, spec: { templates: [nested(300)] } }],
      'WorkflowTemplate "wf/t": template "deep" nests inline templates deeper than 32 levels',
    ],
  ];
  for (const [name, args, expected] of cases) {
    await t.step(name, () => assertEquals(argoObjectProblem(...args), expected));
  }
});
