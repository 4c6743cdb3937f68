export { startDemoIdp } from './demo-idp.ts';
export type { DemoIdp, DemoIdpClient, DemoIdpOptions } from './demo-idp.ts';
export { DEMO_USERS } from './users.ts';
export type { DemoUser } from './users.ts';
