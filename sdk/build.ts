/**
 * The native SDK as one browser ESM bundle (exports `Client`, `ReactorError`, `jitteredBackoff`…), built in memory
 * with esbuild, once per process. Used by the demo page build (public/build/reactor-sdk.js), the tests' pages and
 * the benchmarks. Node code imports sdk/src/index.ts directly.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const ENTRY = path.join(path.dirname(fileURLToPath(import.meta.url)), "src", "index.ts");

let bundle: Promise<string> | undefined;

export function buildSdkBundle(): Promise<string> {
  bundle ??= build({
    entryPoints: [ENTRY],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    legalComments: "none",
    write: false,
    logLevel: "silent",
  })
    .then((result) => result.outputFiles[0]!.text)
    .catch((error: unknown) => {
      bundle = undefined; // a later call may succeed once the source is fixed
      throw error;
    });
  return bundle;
}
