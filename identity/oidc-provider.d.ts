// Minimal typings for the parts of oidc-provider v9 that Bulwark uses (the package ships none).
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';
  import type { TLSSocket } from 'node:tls';

  export type AdapterPayload = Record<string, unknown> & {
    grantId?: string;
    userCode?: string;
    uid?: string;
    consumed?: unknown;
  };

  export interface Adapter {
    upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void>;
    find(id: string): Promise<AdapterPayload | undefined>;
    findByUserCode(userCode: string): Promise<AdapterPayload | undefined>;
    findByUid(uid: string): Promise<AdapterPayload | undefined>;
    consume(id: string): Promise<void>;
    destroy(id: string): Promise<void>;
    revokeByGrantId(grantId: string): Promise<void>;
  }

  /** Koa context as seen by configuration hooks. */
  export interface KoaContextWithOIDC {
    req: IncomingMessage;
    res: ServerResponse;
    socket: TLSSocket;
    method: string;
    path: string;
    url: string;
    query: Record<string, string | undefined>;
    type: string;
    body: unknown;
    status: number;
    oidc: {
      route: string;
      params?: Record<string, unknown>;
      client?: ClientLike;
      entities: Record<string, unknown>;
      provider: Provider;
      entity(name: string, value: unknown): void;
      [key: string]: unknown;
    };
  }

  export interface ClientLike {
    clientId: string;
    clientAuthMethod: string;
    metadata(): Record<string, unknown>;
    [key: string]: unknown;
  }

  export interface InteractionDetails {
    uid: string;
    prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
    params: Record<string, unknown>;
    session?: { accountId?: string };
    grantId?: string;
    lastSubmission?: Record<string, unknown>;
  }

  export class errors {
    static OIDCProviderError: new (status: number, message: string) => Error;
    static InvalidGrant: new (detail?: string) => Error;
    static InvalidTarget: new (detail?: string) => Error;
    static InvalidScope: new (detail?: string, scope?: string) => Error;
    static InvalidRequest: new (detail?: string) => Error;
    static AccessDenied: new (detail?: string) => Error;
    static InvalidClient: new (detail?: string) => Error;
  }

  export const interactionPolicy: {
    base(): Array<{ name: string; checks: unknown[] }> & {
      get(name: string): { name: string; checks: unknown[] } | undefined;
    };
    Check: new (
      reason: string,
      description: string,
      check: (ctx: KoaContextWithOIDC) => boolean,
    ) => unknown;
  };

  export class Provider {
    constructor(issuer: string, configuration?: Record<string, unknown>);
    readonly issuer: string;
    proxy: boolean;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
    interactionResult(
      req: IncomingMessage,
      res: ServerResponse,
      result: Record<string, unknown>,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<string>;
    interactionFinished(
      req: IncomingMessage,
      res: ServerResponse,
      result: Record<string, unknown>,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>;
    registerGrantType(
      name: string,
      handler: (ctx: KoaContextWithOIDC) => Promise<void>,
      params?: string[] | Set<string>,
      dupes?: string[] | Set<string>,
    ): void;
    on(event: string, listener: (...args: never[]) => void): this;
    /** Koa middleware around every route (code after `await next()` runs before the answer is sent). */
    use(middleware: (ctx: KoaContextWithOIDC, next: () => Promise<void>) => Promise<void>): this;
    Grant: GrantModel;
    AccessToken: new (properties: Record<string, unknown>) => AccessTokenInstance;
  }

  export interface GrantInstance {
    addOIDCScope(scope: string): void;
    addOIDCClaims(claims: string[]): void;
    addResourceScope(resource: string, scope: string): void;
    save(ttl?: number): Promise<string>;
  }

  export interface GrantModel {
    new (properties: { accountId?: string; clientId?: unknown }): GrantInstance;
    find(id: string): Promise<GrantInstance | undefined>;
  }

  export interface AccessTokenInstance {
    jti: string;
    scope?: string;
    expiration: number;
    resourceServer: unknown;
    setThumbprint(kind: 'x5t', certificate: string): void;
    save(): Promise<string>;
  }

  export default Provider;
}
