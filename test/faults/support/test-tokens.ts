/**
 * Tokens for load callers from a test issuer. Each subject makes at most `callsPerSubject`
 * calls: the inference quota (a token bucket per subject and model) and the extraction
 * monitor (which judges a subject after 100 queries) then never refuse the load itself, so a
 * refusal seen in a fault test comes from the fault.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestIssuer, type TestIssuer } from '../../../services/policy/testing.ts';
import type { TokenSource } from './fault-mesh.ts';

export interface LoadTokens {
  idp: TestIssuer;
  /** Issuer and JWKS file for the services. */
  source: TokenSource;
  /** The token of caller `caller` for its call number `seq`. */
  tokenFor(caller: number, seq: number): Promise<string>;
}

export async function createLoadTokens(dir: string, callsPerSubject = 50): Promise<LoadTokens> {
  const idp = await createTestIssuer();
  const jwksFile = join(dir, 'test-issuer-jwks.json');
  await writeFile(jwksFile, JSON.stringify({ keys: [idp.publicJwk] }));
  const tokens = new Map<string, Promise<string>>();
  return {
    idp,
    source: { issuer: idp.issuer, jwksFile },
    tokenFor(caller, seq) {
      const sub = `acme/load-${caller}-${Math.floor(seq / callsPerSubject)}`;
      let token = tokens.get(sub);
      if (!token) {
        token = idp.mint({ sub, org: 'acme', roles: ['analyst'] });
        tokens.set(sub, token);
      }
      return token;
    },
  };
}
