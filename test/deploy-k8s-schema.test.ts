// The Kubernetes manifests against the Kubernetes OpenAPI schemas (kubernetes-models): every
// field name, type and required field, per kind, as the API server would check them.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ConfigMap, Namespace, Service } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: Record<string, unknown>) => Validatable;

const models: Record<string, ModelClass> = {
  'v1/ConfigMap': ConfigMap as unknown as ModelClass,
  'v1/Namespace': Namespace as unknown as ModelClass,
  'v1/Service': Service as unknown as ModelClass,
  'apps/v1/Deployment': Deployment as unknown as ModelClass,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy as unknown as ModelClass,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget as unknown as ModelClass,
};

const dir = join(import.meta.dirname, '..', 'deploy', 'k8s');
const manifests = readdirSync(dir)
  .filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml')
  .flatMap((file) =>
    parseAllDocuments(readFileSync(join(dir, file), 'utf8'))
      .map((doc) => doc.toJS() as Record<string, unknown> | null)
      .filter((doc): doc is Record<string, unknown> => doc !== null)
      .map((doc) => ({ file, doc })),
  );

function validate(doc: Record<string, unknown>): void {
  const key = `${String(doc.apiVersion)}/${String(doc.kind)}`;
  const Model = models[key];
  if (!Model) throw new Error(`no schema for ${key}`);
  new Model(doc).validate();
}

describe('Kubernetes manifests against the Kubernetes schemas', () => {
  it('finds every kind the manifests use', () => {
    expect(manifests.length).toBeGreaterThan(10);
    const kinds = new Set(
      manifests.map(({ doc }) => `${String(doc.apiVersion)}/${String(doc.kind)}`),
    );
    expect([...kinds].filter((k) => !models[k])).toEqual([]);
  });

  it.each(
    manifests.map(({ file, doc }) => [
      file,
      doc.kind,
      (doc.metadata as { name?: string })?.name,
      doc,
    ]),
  )('%s: %s %s validates', (_file, _kind, _name, doc) => {
    expect(() => validate(doc as Record<string, unknown>)).not.toThrow();
  });

  it('rejects a manifest with a wrongly typed or a missing required field', () => {
    const deployment = manifests.find(({ doc }) => doc.kind === 'Deployment')!.doc;
    const wrongType = structuredClone(deployment) as { spec: Record<string, unknown> };
    wrongType.spec.replicas = 'two';
    expect(() => validate(wrongType as unknown as Record<string, unknown>)).toThrow(/replicas/);
    const missing = structuredClone(deployment) as { spec: Record<string, unknown> };
    delete missing.spec.selector;
    expect(() => validate(missing as unknown as Record<string, unknown>)).toThrow(/selector/);
  });
});
