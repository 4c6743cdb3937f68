import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs';
import { EnvoyError } from './envoy-error.ts';

const require = createRequire(import.meta.url);

/** The root message of every Envoy configuration file. */
export const BOOTSTRAP_TYPE = 'envoy.config.bootstrap.v3.Bootstrap';

/** Proto roots shipped inside `@grpc/grpc-js-xds`; they are read in place, never copied. */
const DEP_DIRS = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'] as const;

/**
 * Envoy's protos as reflection types. The bootstrap is loaded at once; extension packages
 * (filters, transport sockets, tracers, ...) are loaded the first time a `typed_config`
 * names one of their messages, so a config is checked against exactly the protos it uses.
 */
export interface EnvoySchema {
  /** The message type for a fully qualified name, loading its package on demand. */
  findMessage(typeName: string): protobuf.Type | undefined;
  /** Why the last {@link findMessage} of this name failed, for error messages. */
  whyMissing(typeName: string): string;
}

let shared: EnvoySchema | undefined;

/**
 * Loads Envoy's protos from `@grpc/grpc-js-xds/deps` (cached for the process).
 *
 * @example
 * ```ts
 * const schema = loadEnvoySchema();
 * const bootstrap = schema.findMessage('envoy.config.bootstrap.v3.Bootstrap');
 * ```
 */
export function loadEnvoySchema(): EnvoySchema {
  shared ??= createEnvoySchema(defaultDepsDir());
  return shared;
}

/** The `deps` folder of `@grpc/grpc-js-xds`, which holds Envoy's protos and their imports. */
export function envoyDepsDir(): string {
  return defaultDepsDir();
}

/** The include directories for Envoy's protos, in the order imports are resolved. */
export function envoyIncludeDirs(): string[] {
  return DEP_DIRS.map((dir) => path.join(defaultDepsDir(), dir));
}

function defaultDepsDir(): string {
  try {
    return path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  } catch (err) {
    throw new EnvoyError(
      'ERR_ENVOY_PROTOS_UNAVAILABLE',
      "Envoy's protos were not found: the package @grpc/grpc-js-xds is not installed (run npm ci)",
      { cause: err },
    );
  }
}

/** Builds a schema over a `deps` folder laid out like `@grpc/grpc-js-xds/deps`. */
export function createEnvoySchema(depsDir: string): EnvoySchema {
  registerDescriptorProto();
  const includeDirs = DEP_DIRS.map((dir) => path.join(depsDir, dir));
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of includeDirs) {
      const candidate = path.join(dir, target);
      if (isFile(candidate)) return candidate;
    }
    // Unknown here: protobufjs falls back to its bundled google/protobuf files.
    return target;
  };
  const packages = indexPackages(includeDirs);
  const loadedPackages = new Set<string>();
  const failures = new Map<string, string>();

  const loadFile = (file: string): void => {
    try {
      root.loadSync(file, { keepCase: true });
    } catch (err) {
      failures.set(file, err instanceof Error ? err.message : String(err));
    }
  };
  const loadPackage = (pkg: string): void => {
    if (loadedPackages.has(pkg)) return;
    loadedPackages.add(pkg);
    for (const file of packages.get(pkg) ?? []) loadFile(file);
  };

  const bootstrapFile = path.join(
    includeDirs[0] ?? '',
    'envoy/config/bootstrap/v3/bootstrap.proto',
  );
  if (!isFile(bootstrapFile)) {
    throw new EnvoyError(
      'ERR_ENVOY_PROTOS_UNAVAILABLE',
      `Envoy's bootstrap proto is missing at ${bootstrapFile} (reinstall @grpc/grpc-js-xds)`,
    );
  }
  loadFile(bootstrapFile);

  const resolved = new Map<string, protobuf.Type | undefined>();
  const lookup = (typeName: string): protobuf.Type | undefined => {
    const found = root.lookup(typeName);
    if (!(found instanceof protobuf.Type)) return undefined;
    found.resolveAll();
    return found;
  };
  const findMessage = (typeName: string): protobuf.Type | undefined => {
    if (resolved.has(typeName)) return resolved.get(typeName);
    let type: protobuf.Type | undefined;
    try {
      type = lookup(typeName);
      if (!type) {
        loadPackage(packageOf(typeName));
        type = lookup(typeName);
      }
    } catch (err) {
      failures.set(typeName, err instanceof Error ? err.message : String(err));
      type = undefined;
    }
    resolved.set(typeName, type);
    return type;
  };
  const whyMissing = (typeName: string): string => {
    const failure = failures.get(typeName);
    if (failure) return `its proto does not load (${failure})`;
    if (!packages.has(packageOf(typeName))) {
      return `no Envoy proto declares the package ${packageOf(typeName)}`;
    }
    return `the package ${packageOf(typeName)} has no message ${typeName.slice(packageOf(typeName).length + 1)}`;
  };
  return { findMessage, whyMissing };
}

/** Package of a message name: the dotted prefix before the first capitalised segment. */
function packageOf(typeName: string): string {
  const parts = typeName.split('.');
  const first = parts.findIndex((part) => /^[A-Z]/.test(part));
  return (first < 0 ? parts.slice(0, -1) : parts.slice(0, first)).join('.');
}

/** Maps each proto package to its files, read from the `package` line only (fast). */
function indexPackages(includeDirs: readonly string[]): Map<string, string[]> {
  const packages = new Map<string, string[]>();
  for (const dir of includeDirs) {
    for (const file of protoFiles(dir)) {
      const match = /^package\s+([\w.]+)\s*;/m.exec(readFileSync(file, 'utf8'));
      if (!match?.[1]) continue;
      const list = packages.get(match[1]) ?? [];
      list.push(file);
      packages.set(match[1], list);
    }
  }
  return packages;
}

function protoFiles(dir: string): string[] {
  const out: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) out.push(...protoFiles(full));
    else if (entry.endsWith('.proto')) out.push(full);
  }
  return out;
}

function isFile(file: string): boolean {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

let descriptorRegistered = false;

/** Envoy's annotations extend descriptor.proto, which protobufjs bundles but does not expose. */
function registerDescriptorProto(): void {
  if (descriptorRegistered) return;
  const json = require('protobufjs/google/protobuf/descriptor.json') as {
    nested: { google: { nested: { protobuf: { nested: Record<string, unknown> } } } };
  };
  protobuf.common('descriptor', json.nested.google.nested.protobuf.nested);
  descriptorRegistered = true;
}
