import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { createProgram, main } from '../cli/main.ts';
import { EMBEDDED_CONFIG_PATH, loadConfig, type ServiceName } from '../mesh/config/index.ts';
import { ENTRY_POINTS, planServe } from '../mesh/launcher/index.ts';
import {
  renderEnvoyYaml,
  renderOptionsFromConfig,
  validateEnvoyConfig,
} from '../mesh/envoy/index.ts';

/*
 * A structural check of deploy/k8s against the Kubernetes API over the fields the manifests
 * use (the `kubernetes-models` schemas are not installed): kinds and required fields, no
 * unknown keys in the objects written by hand, selectors that match, probes and limits on
 * every container, every referenced Secret/ConfigMap/PVC defined, and NetworkPolicies that
 * allow exactly the call graph of bulwark.yaml.
 */

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed YAML, walked freely
type Obj = Record<string, any>;
const K8S = path.resolve(import.meta.dirname, '../deploy/k8s');
const kustomization = parse(readFileSync(path.join(K8S, 'kustomization.yaml'), 'utf8')) as Obj;
const docs: Obj[] = (kustomization.resources as string[]).flatMap((file) =>
  parseAllDocuments(readFileSync(path.join(K8S, file), 'utf8')).map((doc) => {
    expect(doc.errors).toEqual([]);
    return doc.toJS() as Obj;
  }),
);
const ofKind = (kind: string) => docs.filter((doc) => doc.kind === kind);
const deployments = ofKind('Deployment');
const deployment = (name: string) => deployments.find((d) => d.metadata.name === name) as Obj;
const MESH = ['identity', 'policy', 'audit', 'inference'] as const;

const KINDS: Record<string, string[]> = {
  v1: ['Namespace', 'Service', 'ConfigMap', 'PersistentVolumeClaim', 'Secret'],
  'apps/v1': ['Deployment'],
  'policy/v1': ['PodDisruptionBudget'],
  'networking.k8s.io/v1': ['NetworkPolicy'],
};

/** Keys the API accepts on the objects these manifests write by hand (a typo is an error). */
const ALLOWED: Record<string, string[]> = {
  deploymentSpec: [
    'replicas',
    'selector',
    'strategy',
    'template',
    'minReadySeconds',
    'revisionHistoryLimit',
    'progressDeadlineSeconds',
    'paused',
  ],
  podSpec: [
    'automountServiceAccountToken',
    'enableServiceLinks',
    'securityContext',
    'terminationGracePeriodSeconds',
    'containers',
    'initContainers',
    'volumes',
    'serviceAccountName',
    'affinity',
    'topologySpreadConstraints',
    'nodeSelector',
    'tolerations',
    'priorityClassName',
  ],
  container: [
    'name',
    'image',
    'imagePullPolicy',
    'command',
    'args',
    'ports',
    'env',
    'envFrom',
    'startupProbe',
    'readinessProbe',
    'livenessProbe',
    'resources',
    'securityContext',
    'volumeMounts',
    'workingDir',
  ],
  probe: [
    'httpGet',
    'tcpSocket',
    'grpc',
    'exec',
    'initialDelaySeconds',
    'periodSeconds',
    'timeoutSeconds',
    'failureThreshold',
    'successThreshold',
  ],
  containerSecurity: [
    'allowPrivilegeEscalation',
    'readOnlyRootFilesystem',
    'capabilities',
    'runAsNonRoot',
    'runAsUser',
    'runAsGroup',
    'privileged',
    'seccompProfile',
  ],
  podSecurity: [
    'runAsNonRoot',
    'runAsUser',
    'runAsGroup',
    'fsGroup',
    'seccompProfile',
    'supplementalGroups',
  ],
  volume: ['name', 'secret', 'configMap', 'projected', 'emptyDir', 'persistentVolumeClaim'],
};

function expectOnlyKeys(object: Obj, allowed: string[], where: string): void {
  const unknown = Object.keys(object).filter((key) => !allowed.includes(key));
  expect({ where, unknown }).toEqual({ where, unknown: [] });
}

const matches = (selector: Obj, labels: Obj) =>
  Object.entries(selector).every(([key, value]) => labels?.[key] === value);

/** The variables a Deployment's first container sets, as the config loader sees them. */
const envOf = (d: Obj): Record<string, string> =>
  Object.fromEntries(
    (d.spec.template.spec.containers[0].env ?? []).map((e: Obj) => [e.name, String(e.value)]),
  );

/**
 * An exec probe must be the mesh health probe, asking this container's own gRPC port as the
 * service itself (the certificate named by `--name`); returns that port.
 */
function execProbe(probe: Obj | undefined, container: Obj): { port: number } | undefined {
  const command = probe?.exec?.command as string[] | undefined;
  if (!command) return undefined;
  const [node, script, ...args] = command;
  expect([node, script]).toEqual(['node', 'mesh/kit/health-probe-main.ts']);
  expect(existsSync(path.resolve(K8S, '../..', script!))).toBe(true);
  const flag = (name: string) => args[args.indexOf(name) + 1];
  expect(flag('--name')).toBe(container.name);
  const address = /^127\.0\.0\.1:(\d+)$/.exec(flag('--address') ?? '');
  expect(address).not.toBeNull();
  return { port: Number(address![1]) };
}

const meshConfig = (env: Record<string, string>) =>
  loadConfig({ file: EMBEDDED_CONFIG_PATH, env: { ...env, BULWARK_CONFIG: undefined } });

describe('deploy/k8s manifests', () => {
  it('use only known API versions and kinds, with names Kubernetes accepts', () => {
    for (const doc of docs) {
      expect(KINDS[doc.apiVersion]).toContain(doc.kind);
      expect(doc.metadata?.name).toMatch(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
    }
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual([
      'audit',
      'gateway',
      'identity',
      'inference',
      'policy',
    ]);
  });

  it('write no unknown keys in Deployments and their pods', () => {
    for (const d of deployments) {
      const pod = d.spec.template.spec;
      expectOnlyKeys(d.spec, ALLOWED.deploymentSpec!, `${d.metadata.name}.spec`);
      expectOnlyKeys(pod, ALLOWED.podSpec!, `${d.metadata.name} pod`);
      expectOnlyKeys(pod.securityContext, ALLOWED.podSecurity!, `${d.metadata.name} pod security`);
      for (const volume of pod.volumes) expectOnlyKeys(volume, ALLOWED.volume!, volume.name);
      for (const c of pod.containers) {
        expectOnlyKeys(c, ALLOWED.container!, c.name);
        expectOnlyKeys(c.securityContext, ALLOWED.containerSecurity!, `${c.name} security`);
        for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
          expectOnlyKeys(c[probe], ALLOWED.probe!, `${c.name}.${probe}`);
        }
      }
    }
  });

  it('select their own pods: Deployment, Service, PodDisruptionBudget, NetworkPolicy', () => {
    const templates = deployments.map((d) => d.spec.template.metadata.labels as Obj);
    for (const d of deployments) {
      expect(Object.keys(d.spec.selector.matchLabels).length).toBeGreaterThan(0);
      expect(matches(d.spec.selector.matchLabels, d.spec.template.metadata.labels)).toBe(true);
    }
    for (const s of ofKind('Service').filter((svc) => svc.spec.type !== 'ExternalName')) {
      const selected = templates.filter((labels) => matches(s.spec.selector, labels));
      expect({ service: s.metadata.name, selects: selected.length }).toEqual({
        service: s.metadata.name,
        selects: 1,
      });
      for (const port of s.spec.ports) {
        const target = deployments
          .find((d) => matches(s.spec.selector, d.spec.template.metadata.labels))!
          .spec.template.spec.containers.flatMap((c: Obj) => c.ports);
        expect(target.some((p: Obj) => p.name === port.targetPort)).toBe(true);
      }
    }
    for (const p of ofKind('NetworkPolicy')) {
      const selector = p.spec.podSelector.matchLabels ?? {};
      if (Object.keys(selector).length > 0) {
        expect(templates.filter((labels) => matches(selector, labels))).toHaveLength(1);
      }
    }
  });

  it('protect every replicated Deployment with a PodDisruptionBudget', () => {
    const budgets = ofKind('PodDisruptionBudget');
    for (const d of deployments.filter((dep) => dep.spec.replicas > 1)) {
      const budget = budgets.find((b) =>
        matches(b.spec.selector.matchLabels, d.spec.template.metadata.labels),
      );
      expect({ deployment: d.metadata.name, budget: Boolean(budget) }).toEqual({
        deployment: d.metadata.name,
        budget: true,
      });
      expect(budget!.spec.minAvailable).toBeLessThan(d.spec.replicas);
    }
    for (const b of budgets) {
      const target = deployments.find((d) =>
        matches(b.spec.selector.matchLabels, d.spec.template.metadata.labels),
      );
      // A budget over a single replica would block every node drain.
      expect(target?.spec.replicas).toBeGreaterThan(1);
    }
  });

  it('give every container startup, readiness and liveness probes on its own ports, and limits', () => {
    for (const d of deployments) {
      for (const c of d.spec.template.spec.containers) {
        const ports = (c.ports as Obj[]).flatMap((p) => [p.name, p.containerPort]);
        for (const kind of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
          const probe = c[kind];
          const action = probe?.httpGet ?? probe?.tcpSocket ?? probe?.grpc ?? execProbe(probe, c);
          expect({ container: c.name, kind, port: ports.includes(action?.port) }).toEqual({
            container: c.name,
            kind,
            port: true,
          });
        }
        for (const bound of ['requests', 'limits']) {
          expect(c.resources[bound]).toEqual({
            cpu: expect.any(String),
            memory: expect.any(String),
          });
        }
      }
    }
  });

  it('run every pod unprivileged, read-only and without a service account token', () => {
    for (const d of deployments) {
      const pod = d.spec.template.spec;
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(pod.securityContext.runAsNonRoot).toBe(true);
      expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
      for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
        expect(c.resources.limits).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
        expect(c.securityContext).toMatchObject({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        });
      }
    }
  });

  it('define every Secret, ConfigMap and PersistentVolumeClaim they reference', () => {
    const secrets = new Set([
      ...(kustomization.secretGenerator as Obj[]).map((g) => g.name as string),
      ...ofKind('Secret').map((s) => s.metadata.name as string),
    ]);
    const configMaps = new Set(ofKind('ConfigMap').map((c) => c.metadata.name as string));
    const claims = new Set(ofKind('PersistentVolumeClaim').map((c) => c.metadata.name as string));
    for (const d of deployments) {
      for (const volume of d.spec.template.spec.volumes as Obj[]) {
        const sources = volume.projected?.sources ?? [volume];
        for (const source of sources) {
          if (source.secret)
            expect(secrets).toContain(source.secret.secretName ?? source.secret.name);
          if (source.configMap) expect(configMaps).toContain(source.configMap.name);
        }
        if (volume.persistentVolumeClaim)
          expect(claims).toContain(volume.persistentVolumeClaim.claimName);
      }
      const mounts = [
        ...d.spec.template.spec.containers,
        ...(d.spec.template.spec.initContainers ?? []),
      ].flatMap((c: Obj) => c.volumeMounts);
      const volumes = (d.spec.template.spec.volumes as Obj[]).map((v) => v.name);
      for (const mount of mounts) expect(volumes).toContain(mount.name);
    }
  });

  it('let kustomize set every image the Deployments use', () => {
    const names = (kustomization.images as Obj[]).map((image) => image.name as string);
    for (const d of deployments) {
      for (const c of d.spec.template.spec.containers) {
        expect(names).toContain((c.image as string).split(':')[0]);
      }
    }
  });

  it('commit no key material: Secrets come from git-ignored files', () => {
    expect(ofKind('Secret')).toEqual([]);
    for (const generator of kustomization.secretGenerator as Obj[]) {
      for (const entry of generator.files as string[]) {
        expect(entry.split('=').at(-1)).toMatch(/^(pki|secrets)\/[\w.-]+$/);
      }
    }
    for (const dir of ['pki', 'secrets']) {
      expect(readFileSync(path.join(K8S, dir, '.gitignore'), 'utf8')).toMatch(/^\*$/m);
    }
  });

  it('run `bulwark serve` in every Bulwark container, with a plan the launcher accepts', () => {
    const program = createProgram({ out: () => undefined, err: () => undefined });
    const flags = program.commands.find((c) => c.name() === 'serve')!.options.map((o) => o.long);
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-k8s-serve-'));
    try {
      for (const file of ['ca.crt', ...MESH.flatMap((n) => [`${n}.crt`, `${n}.key`])]) {
        writeFileSync(path.join(dir, file), '');
      }
      for (const name of MESH) {
        const [entry, verb, target, ...rest] = deployment(name).spec.template.spec.containers[0]
          .args as string[];
        expect([entry, verb, target]).toEqual(['bin/bulwark.js', 'serve', name]);
        const given = new Map<string, string>();
        for (let i = 0; i < rest.length; i += 2) given.set(rest[i]!, rest[i + 1]!);
        for (const flag of given.keys()) expect(flags).toContain(flag);
        const plan = planServe({
          service: name,
          ...(given.has('--jwks') ? { jwks: given.get('--jwks')! } : {}),
          ...(given.has('--trust') ? { trust: given.get('--trust')!.split(',') } : {}),
          ...(given.has('--postgres-url-file')
            ? { postgresUrlFile: given.get('--postgres-url-file')! }
            : {}),
          certsDir: dir,
          stateDir: path.join(dir, name),
          env: { ...envOf(deployment(name)), BULWARK_CONFIG: EMBEDDED_CONFIG_PATH },
        });
        expect(plan.entry).toBe(ENTRY_POINTS[name]);
        expect(existsSync(plan.entry)).toBe(true);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('make the gRPC services ready only when their health service says SERVING', () => {
    for (const name of ['policy', 'audit', 'inference'] as const) {
      const c = deployment(name).spec.template.spec.containers[0];
      const port = execProbe(c.readinessProbe, c)?.port;
      expect({ name, port }).toEqual({
        name,
        port: meshConfig(envOf(deployment(name))).services[name].port,
      });
    }
  });

  it('run several broker replicas on a shared PostgreSQL store, never on a pod-local one', () => {
    const d = deployment('identity');
    expect(d.spec.replicas).toBeGreaterThan(1);
    // Recreate (and a ReadWriteOnce claim) only made sense for one pod with SQLite.
    expect(d.spec.strategy.type).toBe('RollingUpdate');
    const pod = d.spec.template.spec;
    expect((pod.volumes as Obj[]).some((v) => v.persistentVolumeClaim)).toBe(false);
    const args = pod.containers[0].args as string[];
    const urlFile = args[args.indexOf('--postgres-url-file') + 1]!;
    expect(urlFile).toBe('/run/secrets/identity-postgres-url');
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-k8s-identity-'));
    try {
      writeFileSync(path.join(dir, 'ca.crt'), '');
      const plan = planServe({
        service: 'identity',
        postgresUrlFile: urlFile,
        certsDir: dir,
        stateDir: dir,
        env: { ...envOf(d), BULWARK_CONFIG: EMBEDDED_CONFIG_PATH },
      });
      const launch = JSON.parse(plan.files[0]!.content) as Obj;
      expect(launch.postgres).toEqual({ urlFile });
      expect(launch.databasePath).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // The URL file comes from a Secret generated from a git-ignored file, mounted at /run/secrets.
    const sources = (pod.volumes as Obj[]).flatMap((v) => v.projected?.sources ?? []);
    expect(sources.map((src: Obj) => src.secret?.name)).toContain('identity-postgres-url');
    const generated = (kustomization.secretGenerator as Obj[]).find(
      (g) => g.name === 'identity-postgres-url',
    );
    expect(generated?.files).toEqual(['identity-postgres-url=secrets/identity-postgres-url']);
    // Client-IP affinity stays on the identity Services (harmless; the replicas share their
    // cookie keys through PostgreSQL, so it is not needed for sign-ins).
    for (const svc of ofKind('Service').filter(
      (x) => x.spec.selector?.['app.kubernetes.io/name'] === 'identity',
    )) {
      expect({ service: svc.metadata.name, affinity: svc.spec.sessionAffinity }).toEqual({
        service: svc.metadata.name,
        affinity: 'ClientIP',
      });
    }
  });

  it("configure each service through variables the config loader accepts, on the pod's ports", () => {
    for (const name of MESH) {
      const d = deployment(name);
      const config = meshConfig(envOf(d));
      const container = d.spec.template.spec.containers[0];
      const ports = (container.ports as Obj[]).map((p) => p.containerPort);
      expect(ports).toEqual([config.services[name].port, config.services[name].metricsPort]);
      expect(config.services[name].host).toBe('0.0.0.0');
    }
  });

  it('ship the gateway ConfigMap rendered for the public issuer the services expect', () => {
    const issuerEnv = envOf(deployment('inference'));
    const configMap = ofKind('ConfigMap').find((c) => c.metadata.name === 'gateway-envoy')!;
    const expected = renderEnvoyYaml(renderOptionsFromConfig(meshConfig(issuerEnv)));
    const fresh = configMap.data['envoy.yaml'] === expected;
    const command = `bulwark envoy render --issuer ${issuerEnv.BULWARK_SERVICES__IDENTITY__PUBLIC_URL} --format configmap --out deploy/k8s/gateway-envoy.yaml`;
    expect(fresh ? 'up to date' : `stale: run ${command}`).toBe('up to date');
    expect(validateEnvoyConfig(configMap.data['envoy.yaml']).ok).toBe(true);
    for (const name of MESH) {
      expect(envOf(deployment(name)).BULWARK_SERVICES__IDENTITY__PUBLIC_URL).toBe(
        issuerEnv.BULWARK_SERVICES__IDENTITY__PUBLIC_URL,
      );
    }
  });
});

describe('deploy/k8s/pki, as docs/deploy.md makes it', () => {
  const docs = readFileSync(path.resolve(K8S, '../../docs/deploy.md'), 'utf8');
  const section = docs.slice(docs.indexOf('## Kubernetes'));
  const ns = /^NS=(\S+)/m.exec(section)?.[1];
  const loop = /for name in ([\w ]+); do\n(?:\s*#.*\n)*\s*(bulwark ca issue [^\n]+\n[^\n]*)\n/.exec(
    section,
  );
  const names = loop?.[1]?.split(' ') ?? [];

  it('issues every workload certificate the Secrets need, for the kustomize namespace', () => {
    const tls = (kustomization.secretGenerator as Obj[])
      .filter((g) => /-tls$/.test(g.name))
      .map((g) => (g.name as string).replace(/-tls$/, ''));
    expect([...names].sort()).toEqual(tls.sort());
    expect(ns).toBe(kustomization.namespace);
    expect(loop?.[2]?.replace(/\\\n\s*/, '')).toBe(
      'bulwark ca issue "$name" --dir deploy/k8s/pki --days 30 ' +
        '--dns "$name" --dns "$name.$NS.svc" --dns "$name.$NS.svc.cluster.local"',
    );
  });

  it('gives each service certificate its short and namespaced service names', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-k8s-pki-'));
    const io = { out: () => undefined, err: () => undefined };
    try {
      expect(await main(['node', 'bulwark', 'ca', 'init', '--dir', dir], io)).toBe(0);
      const hosts = (name: string) => [
        name,
        `${name}.${ns}.svc`,
        `${name}.${ns}.svc.cluster.local`,
      ];
      for (const name of names) {
        const dns = hosts(name).flatMap((h) => ['--dns', h]);
        expect(await main(['node', 'bulwark', 'ca', 'issue', name, '--dir', dir, ...dns], io)).toBe(
          0,
        );
        const cert = new X509Certificate(readFileSync(path.join(dir, `${name}.crt`)));
        for (const host of hosts(name)) expect(cert.checkHost(host)).toBe(host);
        expect(cert.checkHost(`${name}.other.svc`)).toBeUndefined();
      }
      // What policy and inference dial for the broker's keys.
      const jwks = deployment('inference').spec.template.spec.containers[0].args as string[];
      const host = new URL(jwks[jwks.indexOf('--jwks') + 1]!).hostname;
      const broker = new X509Certificate(readFileSync(path.join(dir, 'identity.crt')));
      expect(broker.checkHost(host)).toBe(host);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deploy/k8s network policies', () => {
  const policies = ofKind('NetworkPolicy');
  const config = loadConfig({ file: EMBEDDED_CONFIG_PATH, env: {} });
  const svcPrefix = `spiffe://${config.trustDomain}/svc/`;
  /** The design's call graph: caller -> callee for every mesh peer in bulwark.yaml. */
  const callers = (callee: ServiceName) =>
    config.services[callee].allowedPeers
      .filter((peer) => peer.startsWith(svcPrefix))
      .map((peer) => peer.slice(svcPrefix.length))
      .sort();
  const policyOf = (app: string) =>
    policies.find((p) => p.spec.podSelector.matchLabels?.['app.kubernetes.io/name'] === app)!;
  const podApps = (peers: Obj[] | undefined) =>
    (peers ?? [])
      .filter((peer) => peer.podSelector && !peer.namespaceSelector)
      .map((peer) => peer.podSelector.matchLabels['app.kubernetes.io/name'] as string);

  it('deny everything by default', () => {
    const deny = policies.find((p) => p.metadata.name === 'default-deny')!;
    expect(deny.spec).toEqual({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
  });

  it.each(['policy', 'audit', 'inference'] as const)(
    'admit to %s exactly its mesh peers from bulwark.yaml, on its port',
    (name) => {
      const policy = policyOf(name);
      expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
      const port = config.services[name].port;
      const onPort = (policy.spec.ingress as Obj[]).filter((rule) =>
        rule.ports.some((p: Obj) => p.port === port),
      );
      expect(onPort.every((rule) => Array.isArray(rule.from))).toBe(true);
      expect(onPort.flatMap((rule) => podApps(rule.from)).sort()).toEqual(callers(name));
    },
  );

  it('leave only the gateway and the broker open to the outside', () => {
    const open = policies
      .filter((p) => (p.spec.ingress ?? []).some((rule: Obj) => !rule.from))
      .map((p) => p.metadata.name)
      .sort();
    expect(open).toEqual(['gateway', 'identity']);
    const publicServices = ofKind('Service').filter((s) => s.spec.type === 'LoadBalancer');
    expect(publicServices.map((s) => s.spec.selector['app.kubernetes.io/name']).sort()).toEqual([
      'gateway',
      'identity',
    ]);
  });

  it.each(['identity', 'audit'] as const)(
    'let %s reach PostgreSQL in the bulwark-data namespace, and no other service does',
    (name) => {
      const toData = (app: string) =>
        ((policyOf(app).spec.egress ?? []) as Obj[]).filter((rule) =>
          (rule.to ?? []).some(
            (peer: Obj) =>
              peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] ===
              'bulwark-data',
          ),
        );
      expect(toData(name).flatMap((rule) => rule.ports.map((p: Obj) => p.port))).toEqual([5432]);
      for (const other of ['gateway', 'policy', 'inference']) expect(toData(other)).toEqual([]);
    },
  );

  it.each(['gateway', 'identity', 'policy', 'audit', 'inference'] as const)(
    'let %s reach exactly the mesh services it calls',
    (name) => {
      const expected = MESH.filter((callee) => callers(callee).includes(name))
        .map((callee) => `${callee}:${config.services[callee].port}`)
        .sort();
      const actual = (policyOf(name).spec.egress as Obj[])
        .flatMap((rule) =>
          podApps(rule.to).flatMap((app) => rule.ports.map((p: Obj) => `${app}:${p.port}`)),
        )
        .sort();
      expect(actual).toEqual(expected);
    },
  );
});
