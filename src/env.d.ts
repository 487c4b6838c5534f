// Secrets are not in wrangler.toml, so `wrangler types` does not see them; they are declared here.
// Set them with `wrangler secret put NAME` (deployed) or in `.dev.vars` (local; `npm start` writes one).
declare namespace Cloudflare {
  interface Env {
    /** JWK set of private signing keys, newest first (see README: Token signing keys). */
    JWT_SIGNING_KEYS: string;
    /** Guards /admin/*. Unset → admin endpoints answer 403. */
    ADMIN_TOKEN?: string;
    /** Set only in local development: enables the dev token route for the demo page. */
    DEV_API_KEY?: string;
  }
}
interface Env extends Cloudflare.Env {}
