/**
 * The directory of models that have a connected runtime (D1 table `models`). Each model's pool keeps its own row;
 * GET /v1/models reads the names, then asks each pool for the facts.
 */

/** Most models listed at once; far more than one gateway serves. */
export const MAX_LISTED_MODELS = 500;

export async function listModel(db: D1Database, name: string, now: number): Promise<void> {
  await db
    .prepare("INSERT INTO models (name, listed_at) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET listed_at = excluded.listed_at")
    .bind(name, now)
    .run();
}

export async function unlistModel(db: D1Database, name: string): Promise<void> {
  await db.prepare("DELETE FROM models WHERE name = ?").bind(name).run();
}

export async function listedModels(db: D1Database): Promise<string[]> {
  const { results } = await db.prepare("SELECT name FROM models ORDER BY name LIMIT ?").bind(MAX_LISTED_MODELS).all<{ name: string }>();
  return results.map((row) => row.name);
}
