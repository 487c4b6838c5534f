/** `npm run build`: the demo page's generated files in public/build/ (see scripts/lib/build-assets.ts). */
import path from "node:path";
import { parseArgs } from "node:util";
import { buildDemoAssets } from "./lib/build-assets.ts";
import { PROJECT_ROOT } from "./lib/paths.ts";

const HELP = `Build the demo page's assets into public/build/: demo.js (the page), reactor-sdk.js (the native SDK),
reactor-official.js (the official client). \`npm start\` runs this itself.

Usage: npm run build`;

try {
  const { values } = parseArgs({ options: { help: { type: "boolean", short: "h" } }, strict: true });
  if (values.help) {
    console.log(HELP);
  } else {
    const { files } = await buildDemoAssets();
    for (const file of files) console.log(`built ${path.relative(PROJECT_ROOT, file)}`);
  }
} catch (error) {
  console.error(`error: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
