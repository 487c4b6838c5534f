// Secrets are not in wrangler.toml, so `wrangler types` does not see them; they are declared here.
// Set them with `wrangler secret put NAME` (deployed) or in `.dev.vars` (local; `npm start` writes one).
declare namespace Cloudflare {
  interface Env {
    /** JWK set of private signing keys, newest first (see README: Token signing keys). */
    JWT_SIGNING_KEYS: string;
    /** Guards /admin/*. Unset → admin endpoints answer 403. */
    ADMIN_TOKEN?: string;
    /** Credentials GPU runtimes present on their sockets (comma-separated, for rotation). Never valid for clients. */
    RUNTIME_TOKENS?: string;
    /** HMAC secret(s) that sign presigned upload URLs (≥ 32 characters; comma-separated: first signs, any verifies). Unset → uploads disabled. */
    UPLOAD_SIGNING_SECRET?: string;
    /**
     * Settings (vars). Their defaults live in one place, src/config.ts (and src/metering/prices.ts,
     * src/ice-servers.ts); wrangler.toml's [vars] sets only what local development needs otherwise. Set any of
     * these as a var of the same name to override (wrangler.toml [vars], the dashboard, or `.dev.vars`).
     */
    /** Empty = no STUN server; unset = the default (src/config.ts). */
    STUN_URLS?: string;
    SESSION_GRACE_SECONDS?: string;
    SESSION_MAX_SECONDS?: string;
    SESSION_QUEUE_WAIT_SECONDS?: string;
    SESSION_CONNECT_SECONDS?: string;
    SESSION_RETENTION_SECONDS?: string;
    LONG_POLL_MS?: string;
    COMMAND_BUFFER_COUNT?: string;
    COMMAND_BUFFER_BYTES?: string;
    MESSAGE_BUFFER_COUNT?: string;
    MESSAGE_BUFFER_BYTES?: string;
    RUNTIME_HEARTBEAT_MS?: string;
    LIMIT_CONCURRENT_SESSIONS?: string;
    LIMIT_SESSION_CREATIONS_PER_MINUTE?: string;
    LIMIT_ACCOUNT_SESSION_CREATIONS_PER_MINUTE?: string;
    LIMIT_TOKEN_MINTS_PER_MINUTE?: string;
    LIMIT_TURN_CREDENTIALS_PER_MINUTE?: string;
    METER_IDLE_SECONDS?: string;
    UPLOAD_MAX_BYTES?: string;
    UPLOAD_ALLOWED_TYPES?: string;
    UPLOAD_URL_TTL_SECONDS?: string;
    /** Optional (default 100): uploads one session may create. */
    UPLOAD_MAX_PER_SESSION?: string;
    /** "1" only in tests: lets tests move Durable Objects' clocks forward. */
    TEST_CLOCK?: string;
    /** Set only in local development: enables the dev token route for the demo page. */
    DEV_API_KEY?: string;
    /** coturn's `static-auth-secret` (TURN REST-API secret mode); with TURN_HOSTS, enables the coturn provider. */
    TURN_SECRET?: string;
    /** Cloudflare Realtime TURN key's API token; with CLOUDFLARE_TURN_KEY_ID, enables that provider. */
    CLOUDFLARE_TURN_API_TOKEN?: string;
    /** Optional TURN settings as vars (see src/turn/issue.ts); absent from wrangler.toml means "not configured". */
    TURN_HOSTS?: string;
    TURN_PROVIDERS?: string;
    TURN_TTL_SECONDS?: string;
    TURN_PROVIDER_TIMEOUT_MS?: string;
    CLOUDFLARE_TURN_KEY_ID?: string;
    CLOUDFLARE_TURN_API_URL?: string;
  }
}
interface Env extends Cloudflare.Env {}
