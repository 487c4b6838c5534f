// What the worker project's global setup (test/node/support/cloudflare-turn-setup.ts) hands the tests through
// `inject()`: its Node-side declaration is outside this project's tsconfig, so the worker tests see it here. A module
// (the `export {}`), so this augments vitest's types instead of replacing them.
export {};

declare module "vitest" {
  export interface ProvidedContext {
    cloudflareTurnStandIn: { url: string; keyId: string; apiToken: string };
  }
}
