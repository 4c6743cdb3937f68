/**
 * HTTP server spans of the broker: one per request, named by route, continuing the caller's
 * W3C trace context; the audit record of the request carries the same trace id; no token,
 * code or secret reaches a span.
 */
import { createTelemetry, type Telemetry } from '../mesh/telemetry/index.ts';
import { postForm } from '../identity/testing/clients.ts';
import { startHarness, type Harness } from '../identity/testing/harness.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;
let telemetry: Telemetry;
let h: Harness;

beforeAll(async () => {
  telemetry = createTelemetry({
    serviceName: 'identity',
    memoryExporter: true,
    env: {},
    processMetrics: false,
  });
  h = await startHarness({
    brokerOptions: { tracing: { tracer: telemetry.tracer, propagator: telemetry.propagator } },
  });
}, 30_000);

afterAll(async () => {
  await h?.close();
  await telemetry?.shutdown();
});

const spans = () => telemetry.memoryExporter!.getFinishedSpans();

/** The server span ends when the response has been flushed, which the client may see first. */
async function finishedSpan(match: (s: ReturnType<typeof spans>[number]) => boolean) {
  for (let i = 0; i < 50; i++) {
    const span = spans().find(match);
    if (span) return span;
    await new Promise((r) => setTimeout(r, 20));
  }
  return undefined;
}

test('a token request continues the caller trace in a POST /token span; its audit record too', async () => {
  const { status, body } = await postForm(
    h.mtlsFetch,
    `${h.broker.issuer}/token`,
    {
      grant_type: 'client_credentials',
      client_id: 'acme-batch',
      resource: 'urn:bulwark:inference',
      scope: 'model:infer',
    },
    { traceparent: PARENT },
  );
  expect(status).toBe(200);
  const token = String(body.access_token);
  const span = await finishedSpan((s) => s.spanContext().traceId === TRACE_ID);
  expect(span?.name).toBe('POST /token');
  expect(span?.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
  expect(span?.attributes).toMatchObject({
    'http.request.method': 'POST',
    'http.route': '/token',
    'http.response.status_code': 200,
  });
  const issued = h.audit.events.find((e) => e.action === 'token.issue' && e.traceId === TRACE_ID);
  expect(issued?.spanId).toBe(span?.spanContext().spanId);
  // Nothing secret in any span: not the token, not a code, not the client's certificate.
  const all = JSON.stringify(spans().map((s) => ({ n: s.name, a: s.attributes, e: s.events })));
  expect(all).not.toContain(token);
  expect(all).not.toMatch(/eyJ|BEGIN|code=|secret/i);
});

test('a malformed traceparent starts a new trace; an id in the path stays out of the name', async () => {
  const res = await h.fetch(`${h.broker.issuer}/login/some-interaction-id-123`, {
    headers: { traceparent: '00-not-a-trace-01' },
  });
  await res.text();
  const span = await finishedSpan((s) => s.name === 'GET /login/:uid');
  expect(span).toBeDefined();
  expect(span!.spanContext().traceId).toMatch(/^[0-9a-f]{32}$/);
  expect(span!.parentSpanContext).toBeUndefined();
  expect(JSON.stringify(spans().map((s) => [s.name, s.attributes]))).not.toContain(
    'some-interaction-id-123',
  );
});
