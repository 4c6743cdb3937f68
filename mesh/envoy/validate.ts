import { isNode, LineCounter, parseDocument, type Document } from 'yaml';
import { createReferenceCheck } from './check-references.ts';
import { BOOTSTRAP_TYPE, loadEnvoySchema, type EnvoySchema } from './proto-schema.ts';
import { walkMessage, type ConfigIssue } from './walk-message.ts';
import { EnvoyError } from './envoy-error.ts';

/** Result of {@link validateEnvoyConfig}. */
export interface EnvoyValidation {
  /** True when there is no error (warnings, such as deprecated fields, are allowed). */
  ok: boolean;
  /** Errors first, then warnings, each in file order. */
  issues: ConfigIssue[];
}

/** Options of {@link validateEnvoyConfig}. */
export interface ValidateEnvoyOptions {
  /** Envoy's protos; defaults to the ones shipped in `@grpc/grpc-js-xds`. */
  schema?: EnvoySchema;
}

/**
 * Checks an Envoy bootstrap config (YAML or JSON text, or an already parsed object) against
 * Envoy's own `envoy.config.bootstrap.v3.Bootstrap` proto and the extension protos its
 * `typed_config`s name; then checks that every cluster it references is defined and that
 * gRPC targets speak HTTP/2. Every issue names its YAML path (and line, for text input).
 *
 * @example
 * ```ts
 * const result = validateEnvoyConfig(readFileSync('deploy/envoy/envoy.yaml', 'utf8'));
 * for (const issue of result.issues) console.log(`${issue.path}: ${issue.message}`);
 * ```
 */
export function validateEnvoyConfig(
  config: string | object,
  options: ValidateEnvoyOptions = {},
): EnvoyValidation {
  const schema = options.schema ?? loadEnvoySchema();
  const bootstrap = schema.findMessage(BOOTSTRAP_TYPE);
  if (!bootstrap) {
    throw new EnvoyError(
      'ERR_ENVOY_PROTOS_UNAVAILABLE',
      `Envoy's ${BOOTSTRAP_TYPE} proto does not load: ${schema.whyMissing(BOOTSTRAP_TYPE)}`,
    );
  }
  let value: unknown = config;
  let doc: Document | undefined;
  const lines = new LineCounter();
  if (typeof config === 'string') {
    doc = parseDocument(config, { lineCounter: lines, prettyErrors: false });
    if (doc.errors.length > 0) {
      const issues = doc.errors.map((err): ConfigIssue => {
        const line = lines.linePos(err.pos[0]).line;
        return {
          severity: 'error',
          path: '(root)',
          segments: [],
          message: `not valid YAML: ${err.message.split('\n')[0] ?? err.code}`,
          ...(line === undefined ? {} : { line }),
        };
      });
      return { ok: false, issues };
    }
    value = doc.toJS({ maxAliasCount: 1000 });
  }
  const issues: ConfigIssue[] = [];
  const references = createReferenceCheck();
  walkMessage(value, bootstrap, [], { schema, issues, observe: references.observe });
  issues.push(...references.finish());
  if (doc) {
    for (const issue of issues) {
      const node = doc.getIn(issue.segments, true);
      const offset = isNode(node) ? node.range?.[0] : undefined;
      if (offset !== undefined) issue.line = lines.linePos(offset).line;
      else if (issue.segments.length > 0) {
        // A missing key has no node: point at the mapping that lacks it.
        const parent = doc.getIn(issue.segments.slice(0, -1), true);
        const parentOffset = isNode(parent) ? parent.range?.[0] : undefined;
        if (parentOffset !== undefined) issue.line = lines.linePos(parentOffset).line;
      }
    }
  }
  const ordered = [
    ...issues.filter((issue) => issue.severity === 'error'),
    ...issues.filter((issue) => issue.severity === 'warning'),
  ];
  return { ok: !issues.some((issue) => issue.severity === 'error'), issues: ordered };
}

/** One line per issue: `error static_resources.clusters[0].name (line 12): message`. */
export function formatIssue(issue: ConfigIssue): string {
  const line = issue.line === undefined ? '' : ` (line ${issue.line})`;
  return `${issue.severity} ${issue.path}${line}: ${issue.message}`;
}
