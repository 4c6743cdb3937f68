import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMeshCa } from './authority.ts';
import {
  partnerFiles,
  readCaFiles,
  serviceFiles,
  writeCaFiles,
  writeIssuedFiles,
} from './files.ts';
import { createTestPki } from './testing.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulwark-ca-files-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const mode = async (path: string) => (await stat(path)).mode & 0o777;

describe('CA files', () => {
  it('writes keys with mode 0600 and reads the CA back', async () => {
    const ca = await createMeshCa();
    const paths = await writeCaFiles(dir, ca);
    expect(await mode(paths.keyFile)).toBe(0o600);
    expect(await readFile(paths.certFile, 'utf8')).toBe(ca.certificatePem);
    const loaded = await readCaFiles(dir);
    const files = await writeIssuedFiles(
      serviceFiles(dir, 'audit'),
      await loaded.issueService('audit'),
    );
    expect(await mode(files.keyFile)).toBe(0o600);
    const partner = await writeIssuedFiles(
      partnerFiles(dir, 'acme', 'scorer'),
      await loaded.issuePartner('acme', 'scorer'),
    );
    expect(partner.certFile).toBe(join(dir, 'partners', 'acme', 'scorer.crt'));
    expect(await mode(partner.keyFile)).toBe(0o600);
  });

  it('refuses to overwrite an existing CA unless asked', async () => {
    await writeCaFiles(dir, await createMeshCa());
    await expect(writeCaFiles(dir, await createMeshCa())).rejects.toMatchObject({
      code: 'ERR_CA_FILE_EXISTS',
    });
    await expect(
      writeCaFiles(dir, await createMeshCa(), { overwrite: true }),
    ).resolves.toBeDefined();
  });

  it('reports a missing CA with a stable code', async () => {
    await expect(readCaFiles(join(dir, 'nothing-here'))).rejects.toMatchObject({
      code: 'ERR_CA_FILE_UNREADABLE',
    });
  });

  it('createTestPki writes the services and clients it was asked for', async () => {
    const pki = await createTestPki({
      dir,
      services: ['audit', 'inference'],
      clients: [{ org: 'acme', name: 'scorer' }],
    });
    expect(Object.keys(pki.services)).toEqual(['audit', 'inference']);
    expect(pki.services.audit!.spiffeId).toBe('spiffe://bulwark.local/svc/audit');
    expect(await readFile(pki.services.audit!.keyFile, 'utf8')).toBe(pki.services.audit!.keyPem);
    expect(pki.clients['acme/scorer']!.spiffeId).toBe('spiffe://bulwark.local/partner/acme/scorer');
    expect(pki.services.audit!.caFile).toBe(pki.caFile);
  });
});
