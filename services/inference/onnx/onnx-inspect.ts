/**
 * Walks ONNX `ModelProto` bytes for what a loader must refuse before handing the model to
 * onnxruntime: external-data references (tensor `data_location` = EXTERNAL or an
 * `external_data` entry; the path-traversal CVE family CVE-2022-25882 / CVE-2024-27318) and
 * operators from domains that are not allowed. Every place a tensor or graph can hide is
 * visited: initializers, sparse initializers, node attributes (tensors and subgraphs, e.g.
 * `If`/`Loop` bodies), model-local functions and training info.
 */
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';

/** What the walk found. */
export interface OnnxInspection {
  /** `location` values of every external-data reference (empty when self-contained). */
  externalDataLocations: string[];
  /** Number of tensors marked `data_location = EXTERNAL`. */
  externalTensors: number;
  /** Operator domains used by nodes (`''` is the default ONNX domain). */
  nodeDomains: Set<string>;
  /** Domains imported by `opset_import`. */
  opsetDomains: Set<string>;
  nodeCount: number;
}

type Fields = Map<number, (Uint8Array | bigint)[]>;

// Nesting limit so a hostile file cannot exhaust the stack.
const MAX_DEPTH = 64;

function readFields(bytes: Uint8Array): Fields {
  const r = new BinaryReader(bytes);
  const fields: Fields = new Map();
  while (r.pos < r.len) {
    const [no, type] = r.tag();
    let value: Uint8Array | bigint | undefined;
    switch (type) {
      case WireType.Varint:
        value = BigInt(r.uint64());
        break;
      case WireType.LengthDelimited:
        value = r.bytes();
        break;
      case WireType.Bit32:
        r.skip(type);
        break;
      case WireType.Bit64:
        r.skip(type);
        break;
      default:
        throw new Error(`unsupported wire type ${type} in field ${no}`);
    }
    if (value === undefined) continue;
    const list = fields.get(no) ?? [];
    list.push(value);
    fields.set(no, list);
  }
  return fields;
}

function bytesOf(f: Fields, no: number): Uint8Array[] {
  return (f.get(no) ?? []).filter((v): v is Uint8Array => v instanceof Uint8Array);
}

function text(b: Uint8Array): string {
  return new TextDecoder().decode(b);
}

function visitTensor(bytes: Uint8Array, out: OnnxInspection): void {
  const t = readFields(bytes);
  const location = (t.get(14) ?? []).find((v) => typeof v === 'bigint');
  if (location !== undefined && location !== 0n) out.externalTensors++;
  for (const entry of bytesOf(t, 13)) {
    const kv = readFields(entry);
    const key = bytesOf(kv, 1)[0];
    const value = bytesOf(kv, 2)[0];
    out.externalDataLocations.push(
      key && text(key) === 'location' && value ? text(value) : '<external data entry>',
    );
  }
}

function visitSparseTensor(bytes: Uint8Array, out: OnnxInspection): void {
  const s = readFields(bytes);
  for (const t of [...bytesOf(s, 1), ...bytesOf(s, 2)]) visitTensor(t, out);
}

function visitAttribute(bytes: Uint8Array, out: OnnxInspection, depth: number): void {
  const a = readFields(bytes);
  for (const t of [...bytesOf(a, 5), ...bytesOf(a, 10)]) visitTensor(t, out);
  for (const g of [...bytesOf(a, 6), ...bytesOf(a, 11)]) visitGraph(g, out, depth + 1);
  for (const s of [...bytesOf(a, 22), ...bytesOf(a, 23)]) visitSparseTensor(s, out);
}

function visitNode(bytes: Uint8Array, out: OnnxInspection, depth: number): void {
  const n = readFields(bytes);
  out.nodeCount++;
  const domain = bytesOf(n, 7)[0];
  out.nodeDomains.add(domain ? text(domain) : '');
  for (const a of bytesOf(n, 5)) visitAttribute(a, out, depth);
}

function visitGraph(bytes: Uint8Array, out: OnnxInspection, depth: number): void {
  if (depth > MAX_DEPTH) throw new Error('graph nesting too deep');
  const g = readFields(bytes);
  for (const n of bytesOf(g, 1)) visitNode(n, out, depth);
  for (const t of bytesOf(g, 5)) visitTensor(t, out);
  for (const s of bytesOf(g, 15)) visitSparseTensor(s, out);
}

/**
 * Inspects ONNX model bytes. Throws on bytes that are not a well-formed protobuf.
 *
 * @example
 * ```ts
 * const found = inspectOnnxModel(bytes);
 * if (found.externalDataLocations.length > 0) throw new Error('external data');
 * ```
 */
export function inspectOnnxModel(bytes: Uint8Array): OnnxInspection {
  const out: OnnxInspection = {
    externalDataLocations: [],
    externalTensors: 0,
    nodeDomains: new Set(),
    opsetDomains: new Set(),
    nodeCount: 0,
  };
  const m = readFields(bytes);
  for (const g of bytesOf(m, 7)) visitGraph(g, out, 0);
  for (const o of bytesOf(m, 8)) {
    const d = bytesOf(readFields(o), 1)[0];
    out.opsetDomains.add(d ? text(d) : '');
  }
  // functions (25): FunctionProto { node = 7, domain = 10 }
  for (const fn of bytesOf(m, 25)) {
    const f = readFields(fn);
    for (const n of bytesOf(f, 7)) visitNode(n, out, 1);
  }
  // training_info (20): TrainingInfoProto { initialization = 1, algorithm = 2 }
  for (const ti of bytesOf(m, 20)) {
    const t = readFields(ti);
    for (const g of [...bytesOf(t, 1), ...bytesOf(t, 2)]) visitGraph(g, out, 1);
  }
  return out;
}
