/** Worker entry: the HTTP app and the Durable Object classes it binds. */
import { createApp } from "./app.ts";

const app = createApp();

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
