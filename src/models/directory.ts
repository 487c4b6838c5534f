/**
 * The directory of models (D1 table `models`): every model a runtime has ever registered, and whether one is
 * connected now. Each model's pool keeps its own row; GET /v1/models reads the connected names, then asks each pool
 * for the facts, and POST /sessions refuses names that are not here (src/models/known.ts).
 */

/** Most models listed at once; far more than one gateway serves. */
export const MAX_LISTED_MODELS = 500;

/** The model's first runtime connected (its first ever, or the first after all had left). */
export async function listModel(db: D1Database, name: string, now: number): Promise<void> {
  await db
    .prepare(
      `INSERT INTO models (name, listed_at, connected) VALUES (?, ?, 1)
       ON CONFLICT (name) DO UPDATE SET listed_at = excluded.listed_at, connected = 1`,
    )
    .bind(name, now)
    .run();
}

/** The model's last runtime left. Its row stays: the model is still known, and its sessions wait for a runtime. */
export async function unlistModel(db: D1Database, name: string): Promise<void> {
  await db.prepare("UPDATE models SET connected = 0 WHERE name = ?").bind(name).run();
}

/** Models with a runtime connected, by name. */
export async function listedModels(db: D1Database): Promise<string[]> {
  const { results } = await db
    .prepare("SELECT name FROM models WHERE connected = 1 ORDER BY name LIMIT ?")
    .bind(MAX_LISTED_MODELS)
    .all<{ name: string }>();
  return results.map((row) => row.name);
}

/** Whether a runtime has ever registered `name`. */
export async function modelExists(db: D1Database, name: string): Promise<boolean> {
  return (await db.prepare("SELECT 1 AS known FROM models WHERE name = ?").bind(name).first()) !== null;
}

/** Known model names, in order: those among `names` if given, else any; at most `limit`. */
export async function knownModelNames(db: D1Database, names: readonly string[] | null, limit: number): Promise<string[]> {
  const statement =
    names === null
      ? db.prepare("SELECT name FROM models ORDER BY name LIMIT ?").bind(limit)
      : db.prepare(`SELECT name FROM models WHERE name IN (SELECT value FROM json_each(?)) ORDER BY name LIMIT ?`).bind(JSON.stringify(names), limit);
  const { results } = await statement.all<{ name: string }>();
  return results.map((row) => row.name);
}
