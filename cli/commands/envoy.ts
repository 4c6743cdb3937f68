import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { stringify } from 'yaml';
import type { CliIo } from '../main.ts';
import { CliExit, ExitCode } from '../exit-codes.ts';
import {
  EnvoyError,
  formatIssue,
  renderEnvoyYaml,
  renderOptionsFromConfig,
  validateEnvoyConfig,
  type EnvoyRenderOptions,
  type UpstreamHosts,
} from '../../mesh/envoy/index.ts';
import { ConfigError, loadConfig } from '../../mesh/config/index.ts';

const DEFAULT_OUT = 'deploy/envoy/envoy.yaml';

type OutputFormat = 'yaml' | 'configmap';

function outputFormat(value: string): OutputFormat {
  if (value === 'yaml' || value === 'configmap') return value;
  throw new InvalidArgumentError('expected "yaml" or "configmap"');
}

/** A Kubernetes ConfigMap holding the config as `envoy.yaml` (mounted at /etc/envoy). */
export function envoyConfigMap(envoyYaml: string, name = 'gateway-envoy'): string {
  return stringify(
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name,
        labels: { 'app.kubernetes.io/name': 'gateway', 'app.kubernetes.io/part-of': 'bulwark' },
      },
      data: { 'envoy.yaml': envoyYaml },
    },
    { lineWidth: 0, singleQuote: true },
  );
}

function hostsMode(value: string): UpstreamHosts {
  if (value === 'service-names' || value === 'config') return value;
  throw new InvalidArgumentError('expected "service-names" or "config"');
}

function toCliExit(err: unknown): unknown {
  if (err instanceof ConfigError) {
    const code = err.code === 'ERR_CONFIG_NOT_FOUND' ? ExitCode.UNAVAILABLE : ExitCode.FAILURE;
    // The message already lists every issue with its key path.
    return new CliExit(code, err.message, { cause: err });
  }
  if (err instanceof EnvoyError) {
    const code =
      err.code === 'ERR_ENVOY_PROTOS_UNAVAILABLE' ? ExitCode.UNAVAILABLE : ExitCode.FAILURE;
    return new CliExit(code, err.message, { cause: err });
  }
  return err;
}

interface RenderFlags {
  config?: string;
  out: string;
  hosts: UpstreamHosts;
  issuer?: string;
  format: OutputFormat;
}

/**
 * `bulwark envoy render` writes the gateway's Envoy config from `bulwark.yaml`;
 * `bulwark envoy validate` checks a config against Envoy's own protos.
 */
export function registerEnvoyCommands(program: Command, io: CliIo): void {
  const envoy = program
    .command('envoy')
    .description('render and validate the Envoy gateway configuration');

  envoy
    .command('render')
    .description(
      'render the Envoy gateway config from bulwark.yaml (validated before it is written)',
    )
    .option(
      '--config <file>',
      'mesh configuration file (default: $BULWARK_CONFIG, ./bulwark.yaml, else the built-in demo mesh)',
    )
    .option('--out <file>', `where to write; "-" for standard output`, DEFAULT_OUT)
    .option(
      '--hosts <mode>',
      'how Envoy finds services: "service-names" (compose, Kubernetes DNS) or "config" (one machine)',
      hostsMode,
      'service-names' as UpstreamHosts,
    )
    .option('--issuer <url>', "override the broker's issuer URL (its services.identity.publicUrl)")
    .option(
      '--format <format>',
      '"yaml" (an Envoy bootstrap) or "configmap" (wrapped in a Kubernetes ConfigMap)',
      outputFormat,
      'yaml' as OutputFormat,
    )
    .addHelpText(
      'after',
      '\nExamples:\n  bulwark envoy render\n  bulwark envoy render --config prod.yaml --out - | less\n' +
        '  bulwark envoy render --issuer https://login.example.com --format configmap \\\n' +
        '    --out deploy/k8s/gateway-envoy.yaml\n',
    )
    .action(async (opts: RenderFlags) => {
      try {
        io.err('reading the mesh configuration...\n');
        const config = loadConfig(opts.config === undefined ? {} : { file: opts.config });
        const options: EnvoyRenderOptions = renderOptionsFromConfig(config, opts.hosts);
        if (opts.issuer !== undefined) options.issuer = opts.issuer;
        const text = renderEnvoyYaml(options);
        io.err("checking the result against Envoy's protos...\n");
        const result = validateEnvoyConfig(text);
        if (!result.ok) {
          for (const issue of result.issues) io.err(`${formatIssue(issue)}\n`);
          throw new CliExit(ExitCode.FAILURE, 'the rendered config is not valid; nothing written');
        }
        const output = opts.format === 'configmap' ? envoyConfigMap(text) : text;
        if (opts.out === '-') {
          io.out(output);
          return;
        }
        mkdirSync(path.dirname(path.resolve(opts.out)), { recursive: true });
        writeFileSync(opts.out, output);
        io.err(`wrote ${opts.out}\n`);
      } catch (err) {
        throw toCliExit(err);
      }
    });

  envoy
    .command('validate')
    .description("check an Envoy config against Envoy's own protos and its cluster references")
    .argument('[file]', 'the config (YAML or JSON)', DEFAULT_OUT)
    .option('--json', 'print the issues as JSON')
    .addHelpText(
      'after',
      '\nExit status: 0 valid (warnings allowed), 3 errors found, 4 file unreadable.\n',
    )
    .action((file: string, opts: { json?: boolean }) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new CliExit(ExitCode.UNAVAILABLE, `cannot read ${file}`, { cause: err });
      }
      let result;
      try {
        result = validateEnvoyConfig(text);
      } catch (err) {
        throw toCliExit(err);
      }
      if (opts.json) {
        const issues = result.issues.map(({ severity, path: at, line, message }) => ({
          severity,
          path: at,
          line,
          message,
        }));
        io.out(`${JSON.stringify({ file, ok: result.ok, issues }, null, 2)}\n`);
      } else {
        for (const issue of result.issues) io.out(`${file}: ${formatIssue(issue)}\n`);
      }
      const errors = result.issues.filter((issue) => issue.severity === 'error').length;
      if (errors > 0) {
        throw new CliExit(ExitCode.CHECK_FAILED, `${file}: ${errors} error(s)`);
      }
      if (!opts.json) io.out(`${file}: valid Envoy bootstrap\n`);
    });
}
