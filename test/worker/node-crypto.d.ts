// The slice of node:crypto the worker tests use (workerd provides it under nodejs_compat, wrangler.toml). The
// worker programs do not load @types/node, whose globals would clash with the Workers types.
declare module "node:crypto" {
  interface Hmac {
    update(data: string): Hmac;
    digest(encoding: "base64" | "hex"): string;
  }
  export function createHmac(algorithm: string, key: string): Hmac;
}
