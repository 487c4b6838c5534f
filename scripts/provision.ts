/**
 * `npm run provision` (also `npm test`'s pretest step and a step of .ci/run): installs the Debian packages the tests
 * drive (scripts/lib/provision.ts) when running as root, or stops with the list and the command to install them.
 * Nothing to do when they are installed: one dpkg-query, no apt-get.
 */
import { parseArgs } from "node:util";
import { DEBIAN_PACKAGES, provision, ProvisionError } from "./lib/provision.ts";

const HELP = `Install the Debian packages the tests drive: ${DEBIAN_PACKAGES.map((item) => item.name).join(", ")}.
As root it runs apt-get (update once, then install); otherwise it lists what is missing and how to install it, and
exits 1. \`npm test\` runs this first.

Usage: npm run provision`;

try {
  const { values } = parseArgs({ options: { help: { type: "boolean", short: "h" } }, strict: true });
  if (values.help) {
    console.log(HELP);
  } else {
    const { installed } = await provision();
    const names = DEBIAN_PACKAGES.map((item) => item.name).join(", ");
    console.log(installed.length > 0 ? `installed ${installed.join(", ")}` : `Debian packages for the tests: ${names} (installed)`);
  }
} catch (error) {
  console.error(error instanceof ProvisionError ? error.message : `error: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
