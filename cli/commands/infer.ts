import type { Command } from 'commander';
import type { CliIo } from '../main.ts';
import { CliExit, ExitCode } from '../exit-codes.ts';
import {
  GRPCInferenceServiceClient,
  type ModelInferResponse,
  type ModelMetadataResponse,
} from '../../gen/inference/grpc_service.ts';
import { emptyContents } from '../../services/inference/tensor/codec.ts';
import {
  channelCredentials,
  channelOptions,
  unary,
} from '../../services/inference/client/connect.ts';
import { addConnectionOptions, connection, grpcToCliExit } from './model.ts';

const INPUT_EXAMPLE = "'[[5.1,3.5,1.4,0.2]]'";

/** Reads `--input`: one row `[..]` or rows `[[..],[..]]` of finite numbers, all the same width. */
export function parseRows(text: string): number[][] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CliExit(
      ExitCode.USAGE,
      `--input is not JSON (${(err as Error).message}); expected rows of numbers, e.g. ${INPUT_EXAMPLE}`,
    );
  }
  const rows =
    Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'number')
      ? [value as number[]]
      : value;
  if (
    !Array.isArray(rows) ||
    rows.length === 0 ||
    !rows.every((r) => Array.isArray(r) && r.length > 0 && r.every((v) => typeof v === 'number'))
  ) {
    throw new CliExit(
      ExitCode.USAGE,
      `--input must be a non-empty row [..] or list of rows [[..],[..]] of numbers, e.g. ${INPUT_EXAMPLE}`,
    );
  }
  const widths = new Set((rows as number[][]).map((r) => r.length));
  if (widths.size > 1)
    throw new CliExit(
      ExitCode.USAGE,
      `--input rows differ in length (${[...widths].join(', ')}): every row needs the same number of features`,
    );
  return rows as number[][];
}

/** `bulwark infer`: one ModelInfer call with the rows given as JSON; prints outputs and the audit receipt. */
export function registerInferCommands(program: Command, io: CliIo): void {
  addConnectionOptions(
    program
      .command('infer')
      .description('Run a model on rows of numbers (Open Inference Protocol v2 over TLS)')
      .requiredOption('--model <name>', 'model name, e.g. iris')
      .option('--model-version <version>', 'model version (default: the service chooses)', '')
      .requiredOption('--input <json>', "rows of features, e.g. '[[5.1,3.5,1.4,0.2]]'")
      .option('--output <names...>', 'outputs to return (default: all the model allows)')
      .addHelpText(
        'after',
        '\nThe address and CA default to the inference service of bulwark.yaml and its\n' +
          '<stateDir>/certs/ca.crt (what `bulwark up` runs); the token to $BULWARK_TOKEN.\n' +
          '\nExample:\n  bulwark infer --model iris --input \'[[5.1,3.5,1.4,0.2]]\' --token "$(bulwark token)"\n',
      ),
  ).action(
    async (
      opts: { model: string; modelVersion: string; input: string; output?: string[] } & Parameters<
        typeof connection
      >[0],
    ) => {
      const rows = parseRows(opts.input);
      const conn = connection(opts);
      const client = new GRPCInferenceServiceClient(
        conn.address,
        channelCredentials(conn),
        channelOptions(conn.address),
      );
      try {
        const meta = await unary<ModelMetadataResponse>(
          client,
          'modelMetadata',
          { name: opts.model, version: opts.modelVersion },
          conn,
        );
        const input = meta.inputs[0];
        if (!input) throw new CliExit(ExitCode.FAILURE, `model ${opts.model} declares no inputs`);
        const width = Number(input.shape[1] ?? -1);
        if (input.shape.length === 2 && width > 0 && rows[0]!.length !== width) {
          throw new CliExit(
            ExitCode.USAGE,
            `model ${meta.name} takes rows of ${width} numbers (input "${input.name}"), --input rows have ${rows[0]!.length}`,
          );
        }
        const res = await unary<ModelInferResponse>(
          client,
          'modelInfer',
          {
            modelName: opts.model,
            modelVersion: opts.modelVersion,
            id: `cli-${Date.now()}`,
            parameters: {},
            inputs: [
              {
                name: input.name,
                datatype: input.datatype,
                shape: [rows.length, rows[0]?.length ?? 0],
                parameters: {},
                contents: {
                  ...emptyContents(),
                  [input.datatype === 'FP64' ? 'fp64Contents' : 'fp32Contents']: rows.flat(),
                },
              },
            ],
            outputs: (opts.output ?? []).map((name) => ({ name, parameters: {} })),
            rawInputContents: [],
          },
          conn,
        );
        const outputs = Object.fromEntries(
          res.outputs.map((o) => {
            const c = o.contents;
            const data = c
              ? ([
                  c.fp32Contents,
                  c.fp64Contents,
                  c.int64Contents,
                  c.intContents,
                  c.uintContents,
                  c.uint64Contents,
                  c.boolContents,
                ].find((a) => a.length > 0) ?? [])
              : [];
            return [o.name, { datatype: o.datatype, shape: o.shape, data }];
          }),
        );
        const parameters = Object.fromEntries(
          Object.entries(res.parameters).map(([k, v]) => [k, v.parameterChoice?.value]),
        );
        io.out(
          `${JSON.stringify({ model: res.modelName, version: res.modelVersion, outputs, parameters }, null, 2)}\n`,
        );
      } catch (err) {
        throw grpcToCliExit(err);
      } finally {
        client.close();
      }
    },
  );
}
