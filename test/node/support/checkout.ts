/**
 * What tests must leave alone in the checkout: public/build/ is `npm start`'s (a `wrangler dev` serving public/ reloads
 * the Worker, dropping its sockets, on every file written there). Tests build into copies of their own
 * (scripts/lib/build-assets.ts stageDemoSite()); these helpers prove they did.
 */
import { createHash } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { BUILD_DIR } from "../../../scripts/lib/build-assets.ts";

/** Every file under `dir` with its size, mtime and content hash; "absent" when there is no such directory. */
export async function directoryFingerprint(dir: string = BUILD_DIR): Promise<string> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined;
    throw error;
  });
  if (!entries) return "absent";
  const lines: string[] = [];
  for (const entry of entries.filter((item) => item.isFile())) {
    const file = path.join(entry.parentPath, entry.name);
    const [info, content] = await Promise.all([stat(file), readFile(file)]);
    lines.push(`${path.relative(dir, file)} ${info.size} ${info.mtimeMs} ${createHash("sha256").update(content).digest("hex")}`);
  }
  return lines.sort().join("\n") || "empty";
}
