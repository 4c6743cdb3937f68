import { relative } from 'node:path';
import { caFiles } from '../ca/index.ts';
import type { RunningMesh } from './up.ts';

/** Shortens a path for display when it sits under the working directory. */
function show(path: string, cwd: string): string {
  const rel = relative(cwd, path);
  return rel && !rel.startsWith('..') ? rel : path;
}

/**
 * What `bulwark up` prints once every service is healthy: a table of services (address, pid)
 * and copy-paste commands to log in and call a model, plus a generated-client snippet. No
 * secret is printed, only the files that hold them.
 */
export function renderSummary(mesh: RunningMesh, cwd = process.cwd()): string {
  const { plan, services } = mesh;
  const pids = mesh.pids();
  const width = Math.max(...services.map((s) => s.name.length), 7) + 2;
  const rows = services.map(
    (s) =>
      `  ${s.name.padEnd(width)}${`${s.address}${s.kind === 'grpc' ? ' (gRPC, TLS)' : ''}`.padEnd(42)}${pids[s.name] ?? '-'}`,
  );
  const ca = show(caFiles(plan.certsDir).certFile, cwd);
  const issuer = services.find((s) => s.name === 'identity')?.address ?? '';
  const inference = plan.config.services.inference.address;
  const org = plan.config.organisations[0]?.id ?? 'acme';
  const password = show(mesh.state.demoPasswordFile, cwd);
  const backendSecret = mesh.state.backendSecrets[org];
  const lines = [
    `Bulwark mesh is up (state in ${show(plan.stateDir, cwd)}; logs in ${show(plan.stateDir, cwd)}/logs).`,
    '',
    `  ${'service'.padEnd(width)}${'address'.padEnd(42)}pid`,
    ...rows,
    '',
    `Log in as a person of ${org} (demo user alice; password: cat ${password}) and call a model (in this checkout; plain "bulwark" where it is installed):`,
    '',
    `  export BULWARK_CA_FILE=${ca} BULWARK_ISSUER=${issuer}`,
    `  npx bulwark login --org ${org}`,
    `  npx bulwark infer --address ${inference} --model iris --input '[[5.1,3.5,1.4,0.2]]' --token "$(npx bulwark token)"`,
    '',
  ];
  if (backendSecret) {
    lines.push(
      `A back-end service of ${org} (client credentials), with the generated TypeScript client:`,
      '',
      `  export BULWARK_TOKEN=$(curl -s --cacert ${ca} -u ${org}-backend:$(cat ${show(backendSecret, cwd)}) \\`,
      `    -d grant_type=client_credentials -d resource=urn:bulwark:inference -d scope=model:infer \\`,
      `    ${issuer}/token | node -pe 'JSON.parse(require("fs").readFileSync(0)).access_token')`,
      '',
      `  import { readFileSync } from 'node:fs';`,
      `  import { credentials, Metadata } from '@grpc/grpc-js';`,
      `  import { GRPCInferenceServiceClient, ModelInferRequest } from './gen/inference/grpc_service.ts';`,
      `  const client = new GRPCInferenceServiceClient('${inference}', credentials.createSsl(readFileSync('${ca}')),`,
      `    { 'grpc.ssl_target_name_override': 'localhost' });`,
      `  const md = new Metadata();`,
      `  md.set('authorization', \`Bearer \${process.env.BULWARK_TOKEN}\`);`,
      `  const request = ModelInferRequest.fromPartial({ modelName: 'iris', inputs: [{ name: 'input',`,
      `    datatype: 'FP32', shape: [1, 4], contents: { fp32Contents: [5.1, 3.5, 1.4, 0.2] } }] });`,
      `  client.modelInfer(request, md, (err, res) => console.log(err ?? res.outputs, res?.parameters));`,
      '',
    );
  }
  lines.push('Press Ctrl-C to stop every service.', '');
  return lines.join('\n');
}
