// Modules shared with the Worker (lib/api-keys.ts) name Workers types as globals, as Worker code does. The Node
// side (scripts, bench, test/node) gets the few it needs here, from the importable variant of the same type package.
type D1Database = import("@cloudflare/workers-types").D1Database;
