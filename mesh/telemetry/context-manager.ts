import { AsyncLocalStorage } from 'node:async_hooks';
import {
  context,
  createContextKey,
  ROOT_CONTEXT,
  type Context,
  type ContextManager,
} from '@opentelemetry/api';

/**
 * An OpenTelemetry context manager on `AsyncLocalStorage`, so the span active when a handler
 * starts is still active after every `await` in it: a handler's own outgoing calls become
 * children of its server span, and log lines carry its trace id.
 */
export class AsyncLocalContextManager implements ContextManager {
  readonly #storage = new AsyncLocalStorage<Context>();

  active(): Context {
    return this.#storage.getStore() ?? ROOT_CONTEXT;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    // Every traced call goes through here several times: skip the wrapper closure when there
    // is no `this` to bind.
    if (thisArg === undefined) return this.#storage.run(ctx, fn, ...args);
    return this.#storage.run(ctx, () => fn.apply(thisArg, args));
  }

  bind<T>(ctx: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const fn = target as (...args: unknown[]) => unknown;
    const run = this.#storage.run.bind(this.#storage);
    const bound = function (this: unknown, ...args: unknown[]) {
      return run(ctx, () => fn.apply(this, args));
    };
    return bound as T;
  }

  enable(): this {
    return this;
  }

  disable(): this {
    this.#storage.disable();
    return this;
  }
}

/**
 * Makes sure a real context manager is registered with the OpenTelemetry API. The context
 * manager is process-wide by nature (it tracks async execution, not a service); when one is
 * already registered (by an earlier telemetry instance or by the host application) it is kept.
 */
export function ensureContextManager(): void {
  // A registered manager gives back the context it was handed inside `with`; the no-op one
  // always answers the root context.
  const probe = ROOT_CONTEXT.setValue(PROBE_KEY, true);
  if (context.with(probe, () => context.active().getValue(PROBE_KEY) === true)) return;
  context.setGlobalContextManager(new AsyncLocalContextManager());
}

const PROBE_KEY = createContextKey('bulwark.context-probe');
