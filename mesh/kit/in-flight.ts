import { ServerInterceptingCall, type ServerInterceptor } from '@grpc/grpc-js';

/** Counts calls between their start and their final status, so shutdown can wait for them. */
export interface InFlightCalls {
  /** A grpc-js interceptor that counts every call (when the kit stacks interceptors). */
  readonly interceptor: ServerInterceptor;
  readonly count: number;
  /** A call started (for the kit's combined interceptor; pair with {@link leave}). */
  enter(): void;
  /** A call that {@link enter}ed ended. */
  leave(): void;
  /** Resolves once no call is in flight. */
  idle(): Promise<void>;
}

export function trackInFlightCalls(): InFlightCalls {
  let count = 0;
  const waiters: (() => void)[] = [];
  const enter = () => {
    count += 1;
  };
  const leave = () => {
    count -= 1;
    if (count === 0) {
      for (const wake of waiters.splice(0)) wake();
    }
  };
  // Plain listener/responder objects rather than the grpc-js builders: this runs on every call
  // and the builders only allocate more to produce the same objects.
  const interceptor: ServerInterceptor = (_method, call) => {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      leave();
    };
    enter();
    return new ServerInterceptingCall(call, {
      start: (next) => next({ onCancel: finish }),
      sendStatus: (status, next) => {
        next(status);
        finish();
      },
    });
  };
  return {
    interceptor,
    get count() {
      return count;
    },
    enter,
    leave,
    idle: () =>
      count === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            waiters.push(resolve);
          }),
  };
}
