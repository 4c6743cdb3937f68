import { z } from 'zod';
import { SERVICE_NAMES } from './defaults.ts';

/*
 * The schema of `bulwark.yaml` as written by people: everything optional that has a default
 * (see defaults.ts). Every error message states the expected form; the loader adds the key
 * path and what was found.
 */

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const name = (what: string) =>
  z
    .string({ error: `expected ${what}: 1-63 lowercase letters, digits or inner "-"` })
    .regex(NAME, { error: `expected ${what}: 1-63 lowercase letters, digits or inner "-"` });

const text = (what = 'a non-empty string') =>
  z
    .string({ error: `expected ${what}` })
    .trim()
    .min(1, { error: `expected ${what}` });

const PORT = 'expected an integer 0-65535';
const port = z
  .number({ error: PORT })
  .int({ error: PORT })
  .min(0, { error: PORT })
  .max(65535, { error: PORT });

const HOST = /^[A-Za-z0-9.-]+$|^\[?[0-9A-Fa-f:.]+\]?$/;
const host = z
  .string({ error: 'expected a host name or IP address' })
  .regex(HOST, { error: 'expected a host name or IP address' });

const path = text('a file path');

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);
/** An issuer or endpoint URL: https, or http on a loopback host only (the demo IdPs). */
const secureUrl = z.string({ error: 'expected an https:// URL' }).refine(
  (value) => {
    try {
      const url = new URL(value);
      if (url.username || url.password || url.hash) return false;
      return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.has(url.hostname));
    } catch {
      return false;
    }
  },
  { error: 'expected an https:// URL (http:// only on localhost), without user info or fragment' },
);

const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
const emailDomain = z
  .string({ error: 'expected an email domain such as "acme.example"' })
  .transform((value) => value.toLowerCase())
  .pipe(z.string().regex(DOMAIN, { error: 'expected an email domain such as "acme.example"' }));

/** `inference`, `partner/*` or a full SPIFFE ID (`spiffe://td/path`, optionally ending `/*`). */
const peer = z
  .string({ error: 'expected a service name, "partner/*" or a spiffe:// ID' })
  .regex(/^(spiffe:\/\/[a-z0-9._-]+)?\/?[a-z0-9*][a-z0-9./*-]*$/, {
    error: 'expected a service name, "partner/*" or a spiffe:// ID',
  });

export const serviceSchema = z.strictObject({
  /** Interface to listen on. */
  host: host.optional(),
  port: port.optional(),
  metricsPort: port.optional(),
  /** URL clients use to reach the service (the identity broker's issuer URL). */
  publicUrl: secureUrl.optional(),
  /** Who may call: service names, paths under the trust domain, or SPIFFE IDs. */
  peers: z.array(peer, { error: 'expected a list of peers' }).optional(),
  clientCertificate: z
    .enum(['required', 'optional'], { error: 'expected "required" or "optional"' })
    .optional(),
});

export const roleMappingSchema = z.strictObject({
  claim: text('a claim name'),
  value: z.union([z.string(), z.number(), z.boolean()], {
    error: 'expected a string, number or boolean claim value',
  }),
  role: name('a role name'),
});

const ALGORITHMS = [
  'ES256',
  'ES384',
  'ES512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'EdDSA',
] as const;

export const trustedIssuerSchema = z.strictObject({
  issuer: secureUrl,
  /** The `aud` a subject token must carry; tokens minted for another audience are refused. */
  audience: text('the audience subject tokens must carry'),
  jwksUri: secureUrl.optional(),
  algorithms: z
    .array(z.enum(ALGORITHMS, { error: `expected one of ${ALGORITHMS.join(', ')}` }))
    .min(1, { error: 'expected at least one algorithm' })
    .optional(),
});

export const organisationSchema = z.strictObject({
  displayName: text('a display name'),
  issuer: secureUrl,
  clientId: text('the client id registered at the organisation’s IdP'),
  /** A file holding the client secret; the secret itself never sits in bulwark.yaml. */
  clientSecretFile: path,
  emailDomains: z
    .array(emailDomain, { error: 'expected a list of email domains' })
    .min(1, { error: 'expected at least one email domain' }),
  roleMapping: z.array(roleMappingSchema, { error: 'expected a list of rules' }).optional(),
  defaultRoles: z.array(name('a role name'), { error: 'expected a list of roles' }).optional(),
  upstreamScope: text('space-separated scopes').optional(),
  trustedIssuers: z
    .array(trustedIssuerSchema, { error: 'expected a list of trusted issuers' })
    .optional(),
});

export const modelSchema = z.strictObject({
  bundleDir: path,
  riskTier: z.enum(['low', 'medium', 'high'], { error: 'expected "low", "medium" or "high"' }),
});

const POSTGRES = /^postgres(ql)?:\/\//;
export const storageSchema = z.discriminatedUnion(
  'kind',
  [
    z.strictObject({
      kind: z.literal('sqlite'),
      /** Relative paths are under `stateDir`. */
      path: path.optional(),
    }),
    z.strictObject({
      kind: z.literal('postgres'),
      url: z
        .string({ error: 'expected a postgres:// URL' })
        .regex(POSTGRES, { error: 'expected a postgres:// URL' })
        .refine((value) => !/^[^:]+:\/\/[^/@]*:[^/@]*@/.test(value), {
          error: 'expected a postgres:// URL without a password (use passwordFile)',
        }),
      passwordFile: path.optional(),
    }),
  ],
  { error: 'expected kind "sqlite" or "postgres"' },
);

export const policySchema = z.strictObject({
  modelFile: path.optional(),
  policyFile: path.optional(),
  testFiles: z.array(path, { error: 'expected a list of file paths' }).optional(),
  watch: z.boolean({ error: 'expected true or false' }).optional(),
});

const positive = (what: string) =>
  z.number({ error: `expected ${what}` }).positive({ error: `expected ${what}` });
const atLeastOne = (what: string) =>
  z
    .number({ error: `expected ${what}` })
    .int({ error: `expected ${what}` })
    .min(1, { error: `expected ${what}` });

/** One risk tier's quota per subject and model; a key left out keeps its default. */
export const tierQuotaSchema = z.strictObject({
  ratePerSec: positive('a number of requests per second above 0').optional(),
  burst: atLeastOne('a whole number of requests, at least 1').optional(),
  dailyBudget: atLeastOne('a whole number of requests per UTC day, at least 1').optional(),
});

export const inferenceSchema = z.strictObject({
  /** Quotas per risk tier (`low`, `medium`, `high`), per subject and model, per replica. */
  quotas: z
    .strictObject({
      low: tierQuotaSchema.optional(),
      medium: tierQuotaSchema.optional(),
      high: tierQuotaSchema.optional(),
    })
    .optional(),
});

export const telemetrySchema = z.strictObject({
  logLevel: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      error: 'expected one of fatal, error, warn, info, debug, trace, silent',
    })
    .optional(),
  /** JSON-lines span file (also `BULWARK_TELEMETRY__TRACE_FILE`). */
  traceFile: path.optional(),
  /** Interface the `/metrics` endpoints bind. */
  metricsHost: host.optional(),
});

const services = Object.fromEntries(SERVICE_NAMES.map((n) => [n, serviceSchema.optional()])) as {
  [K in (typeof SERVICE_NAMES)[number]]: z.ZodOptional<typeof serviceSchema>;
};

export const configFileSchema = z.strictObject({
  version: z.literal(1, { error: 'expected 1' }).optional(),
  trustDomain: z
    .string({ error: 'expected a trust domain such as "bulwark.local"' })
    .regex(/^[a-z0-9._-]{1,255}$/, {
      error:
        'expected a trust domain such as "bulwark.local" (lowercase letters, digits, ".", "-", "_")',
    })
    .optional(),
  stateDir: path.optional(),
  services: z.strictObject(services).optional(),
  organisations: z
    .record(name('an organisation id'), organisationSchema, { error: 'expected a mapping' })
    .optional(),
  models: z.record(name('a model name'), modelSchema, { error: 'expected a mapping' }).optional(),
  policy: policySchema.optional(),
  inference: inferenceSchema.optional(),
  storage: storageSchema.optional(),
  telemetry: telemetrySchema.optional(),
});

/** `bulwark.yaml` as written (before defaults). */
export type ConfigFile = z.infer<typeof configFileSchema>;
