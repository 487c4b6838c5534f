/**
 * The demo page's generated files, in public/build/ (gitignored), served by the gateway as static assets:
 *   demo.js              the page (public/demo/*.ts), ESM, with a source map;
 *   reactor-sdk.js       the native SDK (sdk/build.ts buildSdkBundle()), ESM, imported by the page on demand;
 *   reactor-official.js  the official client 2.9.0 (officialClientBundle()), an IIFE setting globalThis.Reactor.
 * Each file is written to a temporary name and renamed, so a gateway serving the directory never sees half a file.
 */
import { existsSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { build } from "esbuild";
import { officialClientBundle } from "./bundles.ts";
import { PROJECT_ROOT } from "./paths.ts";

export const PUBLIC_DIR = path.join(PROJECT_ROOT, "public");
export const BUILD_DIR = path.join(PUBLIC_DIR, "build");
const PAGE_ENTRY = path.join(PUBLIC_DIR, "demo", "main.ts");
const SDK_BUILD = path.join(PROJECT_ROOT, "sdk", "build.ts");

/** Builds the three files; returns their paths. Throws if a piece is missing or does not compile. */
export async function buildDemoAssets(): Promise<{ files: string[] }> {
  const buildSdkBundle = await loadSdkBuilder();
  const [page, sdk, official] = await Promise.all([bundlePage(), buildSdkBundle(), officialClientBundle()]);
  await mkdir(BUILD_DIR, { recursive: true });
  const outputs: Record<string, string> = {
    "demo.js": page.code,
    "demo.js.map": page.map,
    "reactor-sdk.js": sdk,
    "reactor-official.js": official,
  };
  const files = await Promise.all(Object.entries(outputs).map(([name, text]) => writeAtomically(path.join(BUILD_DIR, name), text)));
  return { files };
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
