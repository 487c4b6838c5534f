/**
 * Which model names a session may be created on: those a runtime has registered at least once (a row in the D1
 * directory). A made-up name is refused before anything is created for it: no session object, no ModelPool object,
 * no directory row, no account slot, no entry in the per-model creation window.
 *
 * Cost: a D1 point read per POST /sessions, cached per isolate. A known name stays known (rows are never deleted),
 * so a positive answer is kept for a minute; a negative one only for a few seconds, so a model whose first runtime
 * registers just now can take sessions almost at once. The cache is bounded, so made-up names cannot grow it.
 */
import { ApiError } from "../errors.ts";
import { knownModelNames, modelExists } from "./directory.ts";

const KNOWN_TTL_MS = 60_000;
const UNKNOWN_TTL_MS = 3_000;
const CACHE_MAX = 1024;
/** Names listed in a MODEL_NOT_FOUND message, at most. */
const NAMED_MAX = 20;

const cache = new Map<string, { known: boolean; until: number }>();

export async function isKnownModel(db: D1Database, name: string, now = Date.now()): Promise<boolean> {
  const cached = cache.get(name);
  if (cached && cached.until > now) return cached.known;
  const known = await modelExists(db, name);
  cache.delete(name);
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!); // the oldest entry
  cache.set(name, { known, until: now + (known ? KNOWN_TTL_MS : UNKNOWN_TTL_MS) });
  return known;
}

/**
 * Throws 404 MODEL_NOT_FOUND unless `name` is known. The message names the known models the caller may use
 * (`allowed`: a token's narrowing, null for every model), so a typo is easy to spot; it costs a second read, on
 * this path only.
 */
export async function requireKnownModel(db: D1Database, name: string, allowed: readonly string[] | null): Promise<void> {
  if (await isKnownModel(db, name)) return;
  const names = await knownModelNames(db, allowed, NAMED_MAX + 1);
  const listed = names.slice(0, NAMED_MAX).join(", ") + (names.length > NAMED_MAX ? ", …" : "");
  const which = allowed === null ? "Known models" : "Known models this token may use";
  throw new ApiError(
    "MODEL_NOT_FOUND",
    `No runtime has ever served a model named "${name}". ${names.length > 0 ? `${which}: ${listed}.` : `${which}: none yet.`} ` +
      "GET /v1/models lists those with a runtime connected now.",
  );
}
