import './reflect-polyfill.ts';

/**
 * `@peculiar/x509`, loaded only after the Reflect polyfill is installed. A static import
 * could be evaluated first (CommonJS modules may be linked before the importing ES module
 * runs, as under Jest), so it is loaded dynamically here. Import values from this module,
 * types from `@peculiar/x509` directly.
 */
export const x509 = await import('@peculiar/x509');
