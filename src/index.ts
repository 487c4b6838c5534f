/** Worker entry: the HTTP app and the Durable Object classes it binds. */
import { createApp } from "./app.ts";

export { AccountLimits } from "../durable-objects/limits/account-limits.ts";
export { ModelPool } from "../durable-objects/pool/model-pool.ts";
export { SessionRelay } from "../durable-objects/session/session-relay.ts";

const app = createApp();

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
