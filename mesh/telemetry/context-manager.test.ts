import { createContextKey, ROOT_CONTEXT } from '@opentelemetry/api';
import { AsyncLocalContextManager } from './context-manager.ts';

const KEY = createContextKey('test');

describe('AsyncLocalContextManager', () => {
  it('keeps the context across awaits and timers, and restores the outer one', async () => {
    const manager = new AsyncLocalContextManager();
    const ctx = ROOT_CONTEXT.setValue(KEY, 'inner');
    const seen = await manager.with(ctx, async () => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      const afterTimer = manager.active().getValue(KEY);
      const inTimer = await new Promise((resolve) =>
        setTimeout(() => resolve(manager.active().getValue(KEY)), 1),
      );
      return [afterTimer, inTimer];
    });
    expect(seen).toEqual(['inner', 'inner']);
    expect(manager.active()).toBe(ROOT_CONTEXT);
  });

  it('binds functions to a context and passes other values through', () => {
    const manager = new AsyncLocalContextManager();
    const ctx = ROOT_CONTEXT.setValue(KEY, 'bound');
    const bound = manager.bind(
      ctx,
      (suffix: string) => `${String(manager.active().getValue(KEY))}${suffix}`,
    );
    expect(bound('!')).toBe('bound!');
    const plain = { a: 1 };
    expect(manager.bind(ctx, plain)).toBe(plain);
  });
});
