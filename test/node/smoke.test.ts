import { expect, it } from "vitest";

it("runs on the Node the project pins (≥ 22)", () => {
  expect(Number(process.versions.node.split(".")[0])).toBeGreaterThanOrEqual(22);
});
