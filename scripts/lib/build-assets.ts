/**
 * The demo page's generated files, in public/build/ (gitignored), served by the gateway as static assets:
 *   demo.js              the page (public/demo/*.ts), ESM, with a source map;
 *   reactor-sdk.js       the native SDK (sdk/build.ts buildSdkBundle()), ESM, imported by the page on demand;
 *   reactor-official.js  the official client 2.9.0 (officialClientBundle()), an IIFE setting globalThis.Reactor.
 * Each file is written to a temporary name and renamed, so a gateway serving the directory never sees half a file.
 *
 * Tests build into a copy of public/ of their own (stageDemoSite()): a `wrangler dev` serving public/ (`npm start`)
 * reloads the Worker on every file written there, dropping its live sockets.
 */
import { existsSync } from "node:fs";
import { cp, mkdir, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { build } from "esbuild";
import { officialClientBundle } from "./bundles.ts";
import { PROJECT_ROOT } from "./paths.ts";

export const PUBLIC_DIR = path.join(PROJECT_ROOT, "public");
export const BUILD_DIR = path.join(PUBLIC_DIR, "build");
const PAGE_ENTRY = path.join(PUBLIC_DIR, "demo", "main.ts");
const SDK_BUILD = path.join(PROJECT_ROOT, "sdk", "build.ts");

/** Builds the three files into `buildDir`; returns their paths. Throws if a piece is missing or does not compile. */
export async function buildDemoAssets(buildDir = BUILD_DIR): Promise<{ files: string[] }> {
  const buildSdkBundle = await loadSdkBuilder();
  const [page, sdk, official] = await Promise.all([bundlePage(), buildSdkBundle(), officialClientBundle()]);
  await mkdir(buildDir, { recursive: true });
  const outputs: Record<string, string> = {
    "demo.js": page.code,
    "demo.js.map": page.map,
    "reactor-sdk.js": sdk,
    "reactor-official.js": official,
  };
  const files = await Promise.all(Object.entries(outputs).map(([name, text]) => writeAtomically(path.join(buildDir, name), text)));
  return { files };
}

/**
 * A copy of public/ in `dir` (created; files already there are overwritten), without the checkout's public/build/;
 * with `build`, the demo page's files are built into `dir/build/`. Returns `dir`, to serve as the gateway's assets.
 */
export async function stageDemoSite(dir: string, options: { build?: boolean } = {}): Promise<string> {
  await cp(PUBLIC_DIR, dir, { recursive: true, filter: (source) => path.resolve(source) !== BUILD_DIR });
  if (options.build) await buildDemoAssets(path.join(dir, "build"));
  return dir;
}

async function loadSdkBuilder(): Promise<() => Promise<string>> {
  if (!existsSync(SDK_BUILD)) {
    throw new Error(`cannot build the demo page: the native SDK's bundler ${path.relative(PROJECT_ROOT, SDK_BUILD)} does not exist yet`);
  }
  const module = (await import(SDK_BUILD)) as { buildSdkBundle?: unknown };
  if (typeof module.buildSdkBundle !== "function") {
    throw new Error(`cannot build the demo page: ${path.relative(PROJECT_ROOT, SDK_BUILD)} does not export buildSdkBundle()`);
  }
  return module.buildSdkBundle as () => Promise<string>;
}

async function bundlePage(): Promise<{ code: string; map: string }> {
  const result = await build({
    entryPoints: [PAGE_ENTRY],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    sourcemap: "external",
    outfile: path.join(BUILD_DIR, "demo.js"), // names the map; nothing is written
    write: false,
    logLevel: "silent",
  });
  const file = (suffix: string) => result.outputFiles.find((output) => output.path.endsWith(suffix))!.text;
  return { code: file("demo.js"), map: file("demo.js.map") };
}

async function writeAtomically(file: string, text: string): Promise<string> {
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, text);
  await rename(temporary, file);
  return file;
}
