import { generateKeyPairSync } from 'node:crypto';
import { context, trace, TraceFlags } from '@opentelemetry/api';
import { createLogger } from './logger.ts';
import { ensureContextManager } from './context-manager.ts';

function capture() {
  const lines: string[] = [];
  return {
    lines,
    stream: { write: (line: string) => void lines.push(line) },
    records: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

// A syntactically valid JWT made up for the test (never a real credential).
const header = Buffer.from('{"alg":"ES256","typ":"at+jwt"}').toString('base64url');
const payload = Buffer.from('{"sub":"acme/alice","aud":"urn:bulwark:inference"}').toString(
  'base64url',
);
const TOKEN = `${header}.${payload}.c2lnbmF0dXJlLW5vdC1yZWFsLXNpZ25hdHVyZQ`;
const SIGNATURE = 'c2lnbmF0dXJlLW5vdC1yZWFsLXNpZ25hdHVyZQ';

describe('createLogger', () => {
  it('writes JSON with the service name and level', () => {
    const out = capture();
    createLogger({ service: 'audit', destination: out.stream }).info({ leaf: 3 }, 'appended');
    const [line] = out.records();
    expect(line).toMatchObject({ service: 'audit', level: 'info', leaf: 3, msg: 'appended' });
  });

  it('never writes a token, whichever way it is logged', () => {
    const out = capture();
    const logger = createLogger({ service: 'gateway', destination: out.stream });
    logger.info({ headers: { authorization: `Bearer ${TOKEN}` } }, 'request');
    logger.info({ token: TOKEN, nested: { deeper: { access_token: TOKEN } } }, 'grant');
    logger.info({ note: `subject_token=${TOKEN}&x=1` }, 'exchange');
    logger.warn(`rejected token ${TOKEN} for acme`);
    logger.warn('rejected %s and %o', TOKEN, { value: TOKEN });
    logger.error(new Error(`verification failed for ${TOKEN}`));
    logger.error({ err: new Error(`bad Bearer ${TOKEN}`) }, 'wrapped');
    logger.child({ accessToken: TOKEN, upstream: TOKEN }).info('child');
    const text = out.lines.join('');
    expect(out.lines).toHaveLength(8);
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain(SIGNATURE);
    expect(text).not.toContain(payload);
    expect(text).toContain('[REDACTED]');
    // The surrounding words survive so the line stays useful.
    expect(text).toContain('rejected token [REDACTED] for acme');
  });

  it('never writes a private key or a password', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const body = pem.split('\n')[1] ?? '';
    const out = capture();
    const logger = createLogger({ service: 'ca', destination: out.stream });
    logger.info(`loaded key ${pem}`);
    logger.info({
      keyPem: pem,
      privateKey: pem,
      password: 'hunter2-long',
      clientSecret: 's3cr3t!',
    });
    logger.info({ url: 'postgres://bulwark:pa55word@db:5432/bulwark' }, 'connect');
    const text = out.lines.join('');
    expect(body.length).toBeGreaterThan(20);
    expect(text).not.toContain(body);
    expect(text).not.toContain('hunter2-long');
    expect(text).not.toContain('s3cr3t!');
    expect(text).not.toContain('pa55word');
    expect(text).toContain('postgres://bulwark:[REDACTED]@db:5432/bulwark');
  });

  it('honours extra redaction paths', () => {
    const out = capture();
    createLogger({ service: 'x', destination: out.stream, redactPaths: ['req.pin'] }).info({
      req: { pin: '1234', other: 'kept' },
    });
    expect(out.records()[0]).toMatchObject({ req: { pin: '[REDACTED]', other: 'kept' } });
  });

  it('carries the trace and span ids of the active span', () => {
    ensureContextManager();
    const out = capture();
    const logger = createLogger({ service: 'policy', destination: out.stream });
    const spanContext = {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: TraceFlags.SAMPLED,
    };
    logger.info('outside');
    context.with(trace.setSpanContext(context.active(), spanContext), () => logger.info('inside'));
    const [outside, inside] = out.records();
    expect(outside).not.toHaveProperty('trace_id');
    expect(inside).toMatchObject({
      trace_id: spanContext.traceId,
      span_id: spanContext.spanId,
    });
  });
});
