import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials, Metadata } from '@grpc/grpc-js';
import {
  GRPCInferenceServiceClient,
  ModelInferRequest,
  type ModelInferResponse,
} from '../../../gen/inference/grpc_service.ts';
import { createTlsFetch } from '../../../identity/tls-fetch.ts';
import type { UpMesh } from './up-process.ts';

/** PEM certificate and key. */
export interface ClientTls {
  cert: string;
  key: string;
}

/** Clients of a mesh `bulwark up` started: the broker's token endpoint and inference. */
export function meshClients(mesh: UpMesh) {
  const certs = join(mesh.stateDir, 'certs');
  const ca = readFileSync(join(certs, 'ca.crt'), 'utf8');
  const secret = (org: string) =>
    readFileSync(join(mesh.stateDir, 'secrets', `${org}-backend-client-secret`), 'utf8').trim();

  /** A partner back-end's client certificate (`spiffe://bulwark.local/partner/<org>/backend`). */
  const partner = (org: string): ClientTls => ({
    cert: readFileSync(join(certs, 'partners', org, 'backend.crt'), 'utf8'),
    key: readFileSync(join(certs, 'partners', org, 'backend.key'), 'utf8'),
  });

  /** A client credentials request at the broker for an inference token. */
  async function clientCredentials(
    form: Record<string, string>,
    tls: Partial<ClientTls> = {},
    basic?: string,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await createTlsFetch({ ca, ...tls })(`https://127.0.0.1:${mesh.base}/token`, {
      method: 'POST',
      headers: basic ? { authorization: `Basic ${Buffer.from(basic).toString('base64')}` } : {},
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        resource: 'urn:bulwark:inference',
        scope: 'model:infer',
        ...form,
      }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  /** The access token of `<org>-backend` (client secret; role analyst) for `resource`. */
  async function secretToken(org: string, resource = 'urn:bulwark:inference'): Promise<string> {
    const { status, body } = await clientCredentials(
      { resource },
      {},
      `${org}-backend:${secret(org)}`,
    );
    if (status !== 200) throw new Error(`token request for ${org}-backend failed: ${status}`);
    return body.access_token as string;
  }

  /** A token from the organisation's demo IdP for its back-end (client credentials). */
  async function partnerIdpToken(org: string, port: number, audience: string): Promise<string> {
    const res = await createTlsFetch({ ca })(`https://127.0.0.1:${port}/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${org}-backend:${secret(org)}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: audience }),
    });
    if (res.status !== 200) throw new Error(`${org} IdP token request failed: ${res.status}`);
    return ((await res.json()) as { access_token: string }).access_token;
  }

  /** One ModelInfer call over TLS with a bearer token, as the generated-client snippet does. */
  function infer(
    token: string,
    model: string,
    row: number[],
    tls?: ClientTls,
  ): Promise<ModelInferResponse> {
    const client = new GRPCInferenceServiceClient(
      `127.0.0.1:${mesh.base + 3}`,
      tls
        ? credentials.createSsl(Buffer.from(ca), Buffer.from(tls.key), Buffer.from(tls.cert))
        : credentials.createSsl(Buffer.from(ca)),
      { 'grpc.ssl_target_name_override': 'localhost' },
    );
    const md = new Metadata();
    md.set('authorization', `Bearer ${token}`);
    const request = ModelInferRequest.fromPartial({
      modelName: model,
      inputs: [
        {
          name: 'input',
          datatype: 'FP32',
          shape: [1, row.length],
          contents: { fp32Contents: row },
        },
      ],
    });
    return new Promise((resolve, reject) => {
      client.modelInfer(request, md, { deadline: Date.now() + 10_000 }, (err, res) => {
        client.close();
        if (err) reject(err);
        else resolve(res!);
      });
    });
  }

  return { ca, certs, partner, clientCredentials, secretToken, partnerIdpToken, infer };
}
