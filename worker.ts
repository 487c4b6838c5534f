/**
 * The composition root, wrangler's `main`: the Worker's HTTP app (src/) and the Durable Object classes it binds
 * (durable-objects/). The only module that imports both: src/ never imports durable-objects/ (the Worker reaches
 * its objects through the contract in src/objects.ts), and durable-objects/ may import src/.
 */
import { createApp } from "./src/app.ts";

export { AccountLimits } from "./durable-objects/limits/account-limits.ts";
export { ModelPool } from "./durable-objects/pool/model-pool.ts";
export { SessionRelay } from "./durable-objects/session/session-relay.ts";

const app = createApp();

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
