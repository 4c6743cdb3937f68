/**
 * A minimal ONNX `ModelProto` encoder: enough of onnx.proto (IR version 8) to express the
 * small dense graphs Bulwark's demo models use. Field numbers follow onnx.proto; writing the
 * bytes ourselves keeps the exporter free of a generated ONNX runtime library.
 */
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';

/** ONNX `TensorProto.DataType` values used here. */
export const OnnxDataType = {
  FLOAT: 1,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
} as const;
export type OnnxDataType = (typeof OnnxDataType)[keyof typeof OnnxDataType];

/** A constant tensor stored inside the model (never as external data). */
export interface OnnxInitializer {
  name: string;
  dims: number[];
  /** FP32 values in row-major order. */
  floats: number[];
}

/** One node attribute: an int, a float, or a list of ints. */
export type OnnxAttribute =
  | { name: string; int: number }
  | { name: string; float: number }
  | { name: string; ints: number[] };

export interface OnnxNode {
  opType: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  /** Operator domain; empty is the default ONNX domain. */
  domain?: string;
  attributes?: OnnxAttribute[];
}

/** A graph input or output: a tensor with element type and shape (`-1` = symbolic batch). */
export interface OnnxValueInfo {
  name: string;
  elemType: OnnxDataType;
  shape: number[];
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxInitializer[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
}

export interface OnnxModel {
  graph: OnnxGraph;
  /** Default-domain opset version. */
  opset: number;
  producerName: string;
  producerVersion: string;
  docString?: string;
}

const IR_VERSION = 8;

function message(w: BinaryWriter, field: number, write: (inner: BinaryWriter) => void): void {
  w.tag(field, WireType.LengthDelimited).fork();
  write(w);
  w.join();
}

function writeTensor(w: BinaryWriter, t: OnnxInitializer): void {
  for (const d of t.dims) w.tag(1, WireType.Varint).int64(d);
  w.tag(2, WireType.Varint).int32(OnnxDataType.FLOAT);
  w.tag(8, WireType.LengthDelimited).string(t.name);
  // raw_data (9): little-endian FP32, the compact form every runtime reads.
  const raw = Buffer.alloc(t.floats.length * 4);
  t.floats.forEach((v, i) => raw.writeFloatLE(v, i * 4));
  w.tag(9, WireType.LengthDelimited).bytes(raw);
}

function writeAttribute(w: BinaryWriter, a: OnnxAttribute): void {
  w.tag(1, WireType.LengthDelimited).string(a.name);
  if ('int' in a) {
    w.tag(3, WireType.Varint).int64(a.int);
    w.tag(20, WireType.Varint).int32(2); // AttributeType.INT
  } else if ('float' in a) {
    w.tag(2, WireType.Bit32).float(a.float);
    w.tag(20, WireType.Varint).int32(1); // AttributeType.FLOAT
  } else {
    for (const v of a.ints) w.tag(8, WireType.Varint).int64(v);
    w.tag(20, WireType.Varint).int32(7); // AttributeType.INTS
  }
}

function writeNode(w: BinaryWriter, n: OnnxNode): void {
  for (const i of n.inputs) w.tag(1, WireType.LengthDelimited).string(i);
  for (const o of n.outputs) w.tag(2, WireType.LengthDelimited).string(o);
  if (n.name) w.tag(3, WireType.LengthDelimited).string(n.name);
  w.tag(4, WireType.LengthDelimited).string(n.opType);
  for (const a of n.attributes ?? []) message(w, 5, (x) => writeAttribute(x, a));
  if (n.domain) w.tag(7, WireType.LengthDelimited).string(n.domain);
}

function writeValueInfo(w: BinaryWriter, v: OnnxValueInfo): void {
  w.tag(1, WireType.LengthDelimited).string(v.name);
  // TypeProto.tensor_type (1) → elem_type (1), shape (2) → dim (1) → dim_value (1) | dim_param (2)
  message(w, 2, (type) =>
    message(type, 1, (tensor) => {
      tensor.tag(1, WireType.Varint).int32(v.elemType);
      message(tensor, 2, (shape) => {
        for (const d of v.shape) {
          message(shape, 1, (dim) => {
            if (d < 0) dim.tag(2, WireType.LengthDelimited).string('batch');
            else dim.tag(1, WireType.Varint).int64(d);
          });
        }
      });
    }),
  );
}

function writeGraph(w: BinaryWriter, g: OnnxGraph): void {
  for (const n of g.nodes) message(w, 1, (x) => writeNode(x, n));
  w.tag(2, WireType.LengthDelimited).string(g.name);
  for (const t of g.initializers) message(w, 5, (x) => writeTensor(x, t));
  for (const i of g.inputs) message(w, 11, (x) => writeValueInfo(x, i));
  for (const o of g.outputs) message(w, 12, (x) => writeValueInfo(x, o));
}

/**
 * Serialises a model to ONNX protobuf bytes.
 *
 * @example
 * ```ts
 * const bytes = encodeOnnxModel({ graph, opset: 13, producerName: 'bulwark', producerVersion: '0.1.0' });
 * ```
 */
export function encodeOnnxModel(model: OnnxModel): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, WireType.Varint).int64(IR_VERSION);
  w.tag(2, WireType.LengthDelimited).string(model.producerName);
  w.tag(3, WireType.LengthDelimited).string(model.producerVersion);
  if (model.docString) w.tag(6, WireType.LengthDelimited).string(model.docString);
  message(w, 7, (x) => writeGraph(x, model.graph));
  // opset_import (8): OperatorSetIdProto { domain = 1, version = 2 }
  message(w, 8, (x) => {
    x.tag(1, WireType.LengthDelimited).string('');
    x.tag(2, WireType.Varint).int64(model.opset);
  });
  return w.finish();
}
