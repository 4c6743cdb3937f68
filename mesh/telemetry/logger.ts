import { context, trace } from '@opentelemetry/api';
import { pino, type DestinationStream, type Level, type Logger } from 'pino';
import { redactValue, REDACTED, scrubSecrets } from './redact.ts';

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Written as `service` on every line. */
  service: string;
  /** Minimum level. Default: `'info'`. */
  level?: Level | 'silent';
  /** Where lines go. Default: stdout (fd 1), written synchronously. */
  destination?: DestinationStream;
  /** Extra pino redaction paths (e.g. `'req.body.pin'`), on top of the built-in scrubbing. */
  redactPaths?: string[];
}

/**
 * A pino JSON logger for one service. Every line carries `service` and, inside a traced call,
 * the active span's `trace_id` and `span_id`. Secrets never reach the output: values under
 * secret-named keys at any depth (`authorization`, `token`, `accessToken`, `client_secret`,
 * `password`, `privateKey`, ...) become `[REDACTED]`, and every string, including the message,
 * its format arguments and error messages, is scrubbed of JWTs, PEM private keys, bearer/basic
 * credentials and URL passwords.
 *
 * @example
 * ```ts
 * const logger = createLogger({ service: 'audit' });
 * logger.info({ leaf: 42 }, 'appended');
 * ```
 */
export function createLogger(options: LoggerOptions): Logger {
  const logger = pino(
    {
      level: options.level ?? 'info',
      base: { service: options.service },
      timestamp: pino.stdTimeFunctions.isoTime,
      messageKey: 'msg',
      ...(options.redactPaths?.length
        ? { redact: { paths: options.redactPaths, censor: REDACTED } }
        : {}),
      formatters: {
        level: (label) => ({ level: label }),
        bindings: (bindings) => redactValue(bindings) as Record<string, unknown>,
        log: (object) => redactValue(object) as Record<string, unknown>,
      },
      hooks: {
        // The message and its printf-style arguments never pass through `formatters.log`.
        logMethod(args, method) {
          const scrubbed = args.map((arg: unknown, index) => {
            if (typeof arg === 'string') return scrubSecrets(arg);
            // An Error in first place becomes `err` and its message the line's message.
            if (arg instanceof Error && index === 0) return { err: arg, msg: arg.message };
            return index > 0 && arg !== null && typeof arg === 'object' ? redactValue(arg) : arg;
          }) as Parameters<typeof method>;
          method.apply(this, scrubbed);
        },
      },
      // `formatters.log` has already turned errors into scrubbed plain objects.
      serializers: { err: (err: unknown) => err },
      mixin: traceFields,
    },
    options.destination ?? pino.destination({ fd: 1, sync: true }),
  );
  // Child bindings skip `formatters.log`; children inherit this override through their
  // prototype chain, so grandchildren are scrubbed too.
  const child = logger.child as unknown as (
    this: Logger,
    bindings: object,
    options?: object,
  ) => Logger;
  logger.child = function (this: Logger, bindings: object, childOptions?: object) {
    return child.call(this, redactValue(bindings) as object, childOptions);
  } as unknown as typeof logger.child;
  return logger;
}

/** `trace_id`/`span_id` of the active span, when there is one. */
function traceFields(): Record<string, string> {
  const span = trace.getSpan(context.active());
  if (!span) return {};
  const ctx = span.spanContext();
  if (!trace.isSpanContextValid(ctx)) return {};
  return { trace_id: ctx.traceId, span_id: ctx.spanId };
}
