import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { createProgram, main } from '../cli/main.ts';
import {
  EMBEDDED_CONFIG_PATH,
  loadConfig,
  SERVICE_NAMES,
  type ServiceName,
} from '../mesh/config/index.ts';
import {
  ENTRY_POINTS,
  planServe,
  SERVE_TARGETS,
  type ServeTarget,
} from '../mesh/launcher/index.ts';

/*
 * deploy/compose.yaml is checked by Debian's `docker-compose config` (the Compose schema,
 * offline: no Docker engine needed) and by the structural rules below: which services exist,
 * which ports are published, secrets, health checks, and that every command runs real code.
 */

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed YAML, walked freely
type Obj = Record<string, any>;
const ROOT = path.resolve(import.meta.dirname, '..');
const DEPLOY = path.join(ROOT, 'deploy');
const composeText = readFileSync(path.join(DEPLOY, 'compose.yaml'), 'utf8');
// Compose files use YAML 1.1 merge keys (`<<: *service`).
const compose = parse(composeText, { merge: true }) as Obj;
const services = compose.services as Record<string, Obj>;
const config = loadConfig({ file: EMBEDDED_CONFIG_PATH, env: {} });
const MESH = SERVICE_NAMES.filter((name) => name !== 'gateway');
const ownImage = Object.entries(services).filter(([, s]) => s.build !== undefined);

function dockerCompose(args: string[], cwd: string) {
  return spawnSync('docker-compose', args, { cwd, encoding: 'utf8', timeout: 30_000 });
}

/** The env of a service as the config loader would see it inside its container. */
const envOf = (service: Obj): Record<string, string> =>
  Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, String(v)]));

describe('deploy/compose.yaml', () => {
  it('passes `docker-compose config` (the Compose file schema)', () => {
    const result = dockerCompose(['-f', 'compose.yaml', 'config', '-q'], DEPLOY);
    expect(result.error?.message ?? '').not.toMatch(/ENOENT/); // apt-get install docker-compose
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
  });

  it('is rejected by `docker-compose config` when broken (the check can fail)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-compose-'));
    try {
      writeFileSync(
        path.join(dir, 'compose.yaml'),
        composeText.replace('restart: unless-stopped', 'restrat: unless-stopped'),
      );
      const result = dockerCompose(['-f', 'compose.yaml', 'config', '-q'], dir);
      expect(result.status).not.toBe(0);
      expect(result.stderr).toMatch(/restrat/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names exactly the mesh, the demo partner IdPs, PostgreSQL and Jaeger', () => {
    const expected = [
      ...SERVICE_NAMES,
      ...config.organisations.map((o) => o.id),
      'postgres',
      'jaeger',
    ];
    expect(Object.keys(services).sort()).toEqual(expected.sort());
    expect(services.gateway!.image).toMatch(/^envoyproxy\/envoy:/);
  });

  it('runs `bulwark serve` for every Bulwark service, with a plan the launcher accepts', () => {
    const program = createProgram({ out: () => undefined, err: () => undefined });
    const serveCommand = program.commands.find((c) => c.name() === 'serve')!;
    const flags = serveCommand.options.map((o) => o.long);
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-compose-serve-'));
    try {
      const certs = path.join(dir, 'certs');
      mkdirSync(certs);
      for (const file of [
        'ca.crt',
        ...Object.keys(services).flatMap((n) => [`${n}.crt`, `${n}.key`]),
      ]) {
        writeFileSync(path.join(certs, file), '');
      }
      for (const [name, service] of ownImage) {
        const [entry, verb, target, ...rest] = service.command as string[];
        expect([entry, verb]).toEqual(['bin/bulwark.js', 'serve']);
        expect(SERVE_TARGETS).toContain(target);
        const org = rest[0]?.startsWith('--') ? undefined : rest.shift();
        const given = new Map<string, string>();
        for (let i = 0; i < rest.length; i += 2) given.set(rest[i]!, rest[i + 1]!);
        for (const flag of given.keys())
          expect({ name, flag, known: flags.includes(flag) }).toEqual({ name, flag, known: true });
        const plan = planServe({
          service: target as ServeTarget,
          ...(org ? { org } : {}),
          ...(given.has('--jwks') ? { jwks: given.get('--jwks')! } : {}),
          ...(given.has('--trust') ? { trust: given.get('--trust')!.split(',') } : {}),
          ...(given.has('--password-file') ? { passwordFile: given.get('--password-file')! } : {}),
          ...(given.has('--postgres-url-file')
            ? { postgresUrlFile: given.get('--postgres-url-file')! }
            : {}),
          certsDir: certs,
          stateDir: path.join(dir, name),
          env: { ...envOf(service), BULWARK_CONFIG: EMBEDDED_CONFIG_PATH },
        });
        expect(existsSync(plan.entry)).toBe(true);
        expect(plan.entry).toBe(ENTRY_POINTS[target as ServeTarget]);
        if (target === 'policy' || target === 'inference') {
          // The broker's issuer URL is the published one: the JWKS is fetched by service name.
          expect(plan.args.join(' ')).toContain(
            `--jwks https://identity:${config.services.identity.port}/jwks`,
          );
        }
        if (target === 'demo-idp') {
          // Without a password the demo IdP refuses to start.
          expect(plan.args.join(' ')).toContain('--password-file /run/secrets/demo-password');
          expect(service.secrets).toContain('demo-password');
          // It listens on 0.0.0.0 but names itself as the broker reaches it (discovery check).
          const key = `BULWARK_ORGANISATIONS__${org!.toUpperCase()}__ISSUER`;
          const port = new URL(config.organisations.find((o) => o.id === org)!.issuer).port;
          const issuer = `https://${name}:${port}`;
          // The broker and the IdP itself agree on that URL.
          expect([envOf(services.identity!)[key], envOf(service)[key]]).toEqual([issuer, issuer]);
          expect(plan.args.join(' ')).toContain(`--host 0.0.0.0`);
          expect(plan.args.join(' ')).toContain(`--issuer ${issuer}`);
        }
        if (target === 'identity') {
          const launch = JSON.parse(plan.files[0]!.content) as Obj;
          expect(launch.postgres).toEqual({ urlFile: '/run/secrets/identity-postgres-url' });
          expect(launch.databasePath).toBeUndefined();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps the broker's state in PostgreSQL, in a role and database of its own", () => {
    const identity = services.identity!;
    const postgres = services.postgres!;
    expect(identity.secrets).toContain('identity-postgres-url');
    expect(identity.depends_on.postgres).toEqual({ condition: 'service_healthy' });
    // The init script that creates the role reads the same secret on the first start.
    expect(postgres.secrets).toContain('identity-postgres-url');
    const init = (postgres.volumes as string[]).find((v) =>
      v.includes('docker-entrypoint-initdb.d'),
    );
    expect(init).toMatch(
      /^\.\/postgres\/init-identity\.sh:\/docker-entrypoint-initdb\.d\/[\w-]+\.sh:ro$/,
    );
    expect(existsSync(path.join(DEPLOY, init!.split(':')[0]!))).toBe(true);
    // The audit service keeps its own database: the broker never shares it.
    expect(envOf(services.audit!).BULWARK_STORAGE).toMatch(/@postgres:5432\/audit"/);
  });

  it('publishes only the gateway and the broker, on the ports bulwark.yaml gives them', () => {
    const published = Object.entries(services)
      .filter(([, s]) => s.ports !== undefined)
      .map(([name]) => name)
      .sort();
    expect(published).toEqual(['gateway', 'identity']);
    expect(services.gateway!.ports).toEqual([`${config.services.gateway.port}:8443`]);
    // The issuer URL names the published port, so host and container ports are the same.
    const issuerPort = new URL(config.services.identity.publicUrl!).port;
    expect(services.identity!.ports).toEqual([`${issuerPort}:${config.services.identity.port}`]);
    for (const service of Object.values(services)) expect(service.network_mode).toBeUndefined();
  });

  it('health-checks every service', () => {
    for (const [name, service] of Object.entries(services)) {
      expect({ name, test: service.healthcheck?.test?.[0] }).toEqual({ name, test: 'CMD' });
    }
    // gRPC services: grpc.health.v1 over mTLS, asked with the service's own mounted certificate.
    for (const name of ['policy', 'audit', 'inference'] as const) {
      const [cmd, node, script, ...args] = services[name]!.healthcheck.test as string[];
      expect([cmd, node, script]).toEqual(['CMD', 'node', 'mesh/kit/health-probe-main.ts']);
      expect(existsSync(path.join(ROOT, script!))).toBe(true);
      expect(args).toEqual([
        '--address',
        `127.0.0.1:${config.services[name].port}`,
        '--name',
        name,
      ]);
      expect(services[name]!.secrets).toEqual(
        expect.arrayContaining(['ca.crt', `${name}.crt`, `${name}.key`]),
      );
    }
    // The broker: its JWKS over HTTPS, the certificate checked against the mesh CA.
    const broker = (services.identity!.healthcheck.test as string[]).join(' ');
    expect(broker).toContain(`port: ${config.services.identity.port}, path: '/jwks'`);
    expect(broker).toContain("readFileSync('/run/secrets/ca.crt')");
    expect(broker).not.toContain('rejectUnauthorized');
  });

  it('starts the gateway only when the mesh services are healthy', () => {
    for (const name of MESH) {
      expect(services.gateway!.depends_on[name]).toEqual({ condition: 'service_healthy' });
    }
  });

  it('takes every secret from a git-ignored file and defines every secret it mounts', () => {
    const declared = compose.secrets as Record<string, { file: string }>;
    for (const [name, secret] of Object.entries(declared)) {
      expect({ name, file: secret.file }).toEqual({
        name,
        file: expect.stringMatching(/^\.\/(pki|secrets)\/[\w.-]+$/),
      });
    }
    for (const dir of ['pki', 'secrets']) {
      expect(readFileSync(path.join(DEPLOY, dir, '.gitignore'), 'utf8')).toMatch(/^\*$/m);
    }
    for (const [name, service] of Object.entries(services)) {
      for (const secret of service.secrets ?? []) {
        const source = typeof secret === 'string' ? secret : secret.source;
        expect({ name, source, declared: source in declared }).toEqual({
          name,
          source,
          declared: true,
        });
      }
      // Secrets never travel in variables.
      expect(JSON.stringify(service.environment ?? {})).not.toMatch(/PASSWORD=|SECRET=/i);
    }
  });

  it("mounts the rendered Envoy config and every file it names among the gateway's secrets", () => {
    expect(services.gateway!.volumes).toContain('./envoy/envoy.yaml:/etc/envoy/envoy.yaml:ro');
    const envoy = readFileSync(path.join(DEPLOY, 'envoy/envoy.yaml'), 'utf8');
    const files = [...envoy.matchAll(/filename: (\S+)/g)].map((m) => m[1]);
    expect(files.length).toBeGreaterThan(0);
    for (const file of new Set(files)) {
      expect(file).toMatch(/^\/run\/secrets\//);
      expect(services.gateway!.secrets).toContain(path.basename(file!));
    }
  });

  it('configures each mesh service through variables the config loader accepts', () => {
    for (const name of MESH as ServiceName[]) {
      const env = { ...envOf(services[name]!), BULWARK_CONFIG: undefined };
      const own = loadConfig({ file: EMBEDDED_CONFIG_PATH, env });
      expect(own.services[name].host).toBe('0.0.0.0');
      for (const other of MESH.filter((n) => n !== name)) {
        expect(own.services[other].host).toBe(other);
      }
      expect(own.services[name].port).toBe(config.services[name].port);
    }
    const audit = loadConfig({
      file: EMBEDDED_CONFIG_PATH,
      env: { ...envOf(services.audit!), BULWARK_CONFIG: undefined },
    });
    expect(audit.storage).toMatchObject({
      kind: 'postgres',
      passwordFile: '/run/secrets/postgres-password',
    });
  });
});

describe('deploy/pki for compose, as docs/deploy.md makes it', () => {
  const docs = readFileSync(path.join(ROOT, 'docs/deploy.md'), 'utf8');
  const section = docs.slice(docs.indexOf('## docker compose'), docs.indexOf('## Kubernetes'));
  const loop = /for name in ([\w ]+); do\n(?:\s*#.*\n)*\s*(bulwark ca issue [^\n]+)\n/.exec(
    section,
  );
  const names = loop?.[1]?.split(' ') ?? [];

  it('issues a certificate for every service that mounts one', () => {
    const mounted = Object.keys(compose.secrets as Obj)
      .filter((s) => s.endsWith('.crt') && s !== 'ca.crt')
      .map((s) => s.slice(0, -'.crt'.length));
    expect([...names].sort()).toEqual(mounted.sort());
    expect(loop?.[2]).toBe('bulwark ca issue "$name" --dir deploy/pki --days 30 --dns "$name"');
  });

  it('gives each HTTPS server the host name the other containers dial', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-compose-pki-'));
    const io = { out: () => undefined, err: () => undefined };
    try {
      expect(await main(['node', 'bulwark', 'ca', 'init', '--dir', dir], io)).toBe(0);
      for (const name of names) {
        const args = ['issue', name, '--dir', dir, '--days', '30', '--dns', name];
        expect(await main(['node', 'bulwark', 'ca', ...args], io)).toBe(0);
      }
      // Every https:// URL a container is given names a compose service: its certificate
      // must pass the ordinary host name check for it.
      const urls = new Set(
        [...composeText.matchAll(/https:\/\/([a-z][\w-]*):\d+/g)].map((m) => m[1]!),
      );
      expect([...urls].sort()).toEqual(['acme', 'globex', 'identity']);
      for (const host of urls) {
        const cert = new X509Certificate(readFileSync(path.join(dir, `${host}.crt`)));
        expect({ host, checked: cert.checkHost(host) }).toEqual({ host, checked: host });
        // ...and only for itself.
        for (const other of [...urls].filter((h) => h !== host)) {
          expect(cert.checkHost(other)).toBeUndefined();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deploy/Dockerfile', () => {
  const dockerfile = readFileSync(path.join(DEPLOY, 'Dockerfile'), 'utf8');
  const stages = dockerfile.split(/^FROM /m).slice(1);
  const final = stages.at(-1) ?? '';

  it('is multi-stage, on Node 24, without dev dependencies', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:24[\w.-]*$/m);
    expect(stages.every((stage) => stage.startsWith('${NODE_IMAGE}'))).toBe(true);
    expect(dockerfile).toMatch(/npm (ci|install) --omit=dev/);
    expect(dockerfile).not.toMatch(/^COPY \. /m);
  });

  it('runs as an unprivileged user', () => {
    const user = /^USER (\S+)$/m.exec(final)?.[1];
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
  });

  it('keeps keys, tests and local state out of the build context', () => {
    const ignore = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n');
    for (const entry of ['node_modules', '.bulwark', '**/*.key', '**/*.test.ts', 'deploy']) {
      expect(ignore).toContain(entry);
    }
  });
});
