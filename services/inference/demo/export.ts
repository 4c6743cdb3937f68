/**
 * Exports a trained {@link LinearModel} as an ONNX classifier:
 * `input [N, F] FP32 → MatMul W → Add b → Softmax → probabilities [N, C] FP32`
 * and `ArgMax → label [N] INT64`.
 */
import { encodeOnnxModel, OnnxDataType } from '../onnx/onnx-writer.ts';
import type { LinearModel } from './train.ts';

export const DEMO_INPUT = 'input';
export const DEMO_OUTPUT_PROBABILITIES = 'probabilities';
export const DEMO_OUTPUT_LABEL = 'label';

/**
 * @example
 * ```ts
 * const onnxBytes = exportLinearClassifier(model, 'iris');
 * ```
 */
export function exportLinearClassifier(model: LinearModel, graphName: string): Uint8Array {
  const { features, classes } = model;
  return encodeOnnxModel({
    opset: 13,
    producerName: 'bulwark-demo',
    producerVersion: '0.1.0',
    docString: `${graphName}: multinomial logistic regression trained by Bulwark`,
    graph: {
      name: graphName,
      initializers: [
        { name: 'W', dims: [features, classes], floats: model.weights.flat() },
        { name: 'B', dims: [classes], floats: model.bias },
      ],
      nodes: [
        { opType: 'MatMul', inputs: [DEMO_INPUT, 'W'], outputs: ['xw'], name: 'matmul' },
        { opType: 'Add', inputs: ['xw', 'B'], outputs: ['logits'], name: 'add' },
        {
          opType: 'Softmax',
          inputs: ['logits'],
          outputs: [DEMO_OUTPUT_PROBABILITIES],
          name: 'softmax',
          attributes: [{ name: 'axis', int: 1 }],
        },
        {
          opType: 'ArgMax',
          inputs: ['logits'],
          outputs: [DEMO_OUTPUT_LABEL],
          name: 'argmax',
          attributes: [
            { name: 'axis', int: 1 },
            { name: 'keepdims', int: 0 },
          ],
        },
      ],
      inputs: [{ name: DEMO_INPUT, elemType: OnnxDataType.FLOAT, shape: [-1, features] }],
      outputs: [
        { name: DEMO_OUTPUT_PROBABILITIES, elemType: OnnxDataType.FLOAT, shape: [-1, classes] },
        { name: DEMO_OUTPUT_LABEL, elemType: OnnxDataType.INT64, shape: [-1] },
      ],
    },
  });
}
