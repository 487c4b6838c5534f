/**
 * Browser bundles built with esbuild, in memory, once per process: used by the demo page build and by the
 * end-to-end tests' pages.
 */
import { build } from "esbuild";
import { PROJECT_ROOT } from "./paths.ts";

let officialClient: Promise<string> | undefined;

/**
 * The official client (`@reactor-team/js-sdk`, the version in package.json), unmodified, as one IIFE script that
 * sets `globalThis.Reactor`. `process.env.NODE_ENV` is "production" so the client behaves as in a production app
 * (2.9.0 drops sendCommand unless ready; in "development" it would send anyway). React and zustand must be
 * resolvable (the package's React bindings import them) even though only `Reactor` is used.
 */
export function officialClientBundle(): Promise<string> {
  officialClient ??= build({
    stdin: {
      contents: 'import { Reactor } from "@reactor-team/js-sdk";\nglobalThis.Reactor = Reactor;\n',
      resolveDir: PROJECT_ROOT,
      sourcefile: "reactor-client-entry.js",
      loader: "js",
    },
    bundle: true,
    format: "iife",
    platform: "browser",
    target: "es2022",
    minify: true,
    define: { "process.env.NODE_ENV": '"production"' },
    write: false,
    logLevel: "silent",
  }).then((result) => result.outputFiles[0]!.text);
  return officialClient;
}
