/**
 * Runs one demo partner IdP as a process (for `bulwark up` and manual demos).
 *
 *   node identity/demo-idp/main.ts --org acme --port 9101 \
 *     --client-id bulwark-broker --client-secret-file secrets/acme --redirect-uri https://localhost:8443/login/callback \
 *     [--cert-file certs/idp.pem --key-file certs/idp-key.pem] [--password-file secrets/demo-password]
 *     [--service-client-id acme-backend --service-client-secret-file secrets/acme-backend]
 *     [--issuer https://acme:7451]
 *
 * `--issuer` is the URL clients use when it differs from the listen address (docker compose:
 * `--host 0.0.0.0 --port 7451 --issuer https://acme:7451`). Default `https://<host>:<port>`.
 *
 * Prints one JSON line `{"org":"acme","issuer":"https://127.0.0.1:9101"}` on stdout when ready.
 * Without a password file, `BULWARK_DEMO_PASSWORD` is used; without either it refuses to start.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startDemoIdp } from './demo-idp.ts';

const { values } = parseArgs({
  options: {
    org: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    issuer: { type: 'string' },
    'client-id': { type: 'string', default: 'bulwark-broker' },
    'client-secret-file': { type: 'string' },
    'redirect-uri': { type: 'string', multiple: true },
    'cert-file': { type: 'string' },
    'key-file': { type: 'string' },
    'password-file': { type: 'string' },
    // A partner back-end service (client credentials) whose tokens can be exchanged at the broker.
    'service-client-id': { type: 'string' },
    'service-client-secret-file': { type: 'string' },
  },
});

function fail(message: string): never {
  process.stderr.write(`demo-idp: ${message}\n`);
  process.exit(2);
}

const read = (file: string) => readFileSync(file, 'utf8').trim();
if (!values.org) fail('--org is required (e.g. acme or globex)');
if (!values['client-secret-file']) fail('--client-secret-file is required');
if (!values['redirect-uri']?.length) fail('--redirect-uri is required');
const password = values['password-file']
  ? read(values['password-file'])
  : process.env.BULWARK_DEMO_PASSWORD;
if (!password) fail('--password-file or BULWARK_DEMO_PASSWORD is required');
if (values.issuer !== undefined) {
  let url: URL | undefined;
  try {
    url = new URL(values.issuer);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.search || url.hash) {
    fail(`--issuer must be an http(s) URL without query or fragment, got "${values.issuer}"`);
  }
}

const idp = await startDemoIdp({
  org: values.org,
  host: values.host,
  port: Number(values.port),
  ...(values.issuer ? { issuer: values.issuer } : {}),
  password,
  tls:
    values['cert-file'] && values['key-file']
      ? {
          cert: readFileSync(values['cert-file'], 'utf8'),
          key: readFileSync(values['key-file'], 'utf8'),
        }
      : undefined,
  clients: [
    {
      client_id: values['client-id']!,
      client_secret: read(values['client-secret-file']),
      redirect_uris: values['redirect-uri'],
    },
    ...(values['service-client-id'] && values['service-client-secret-file']
      ? [
          {
            client_id: values['service-client-id'],
            client_secret: read(values['service-client-secret-file']),
            grant_types: ['client_credentials'],
          },
        ]
      : []),
  ],
});
process.stdout.write(`${JSON.stringify({ org: idp.org, issuer: idp.issuer })}\n`);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void idp.close().then(() => process.exit(0));
  });
}
