/** Figures as the reports write them; a figure that could not be measured (NaN, ∞) reads "n/a". */

/** A count with thousands separators: 12,345. */
export const grouped = (value: number) => (Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "n/a");

/** Ours against another's, as a factor: 1.73×. */
export const ratio = (ours: number, other: number) => (Number.isFinite(ours / other) ? `${(ours / other).toFixed(2)}×` : "n/a");

/** A share of 1 as a whole percentage: 42 %. */
export const pct = (share: number) => `${Math.round(share * 100)} %`;

/** KiB as whole MiB. */
export const mib = (kib: number) => (kib / 1024).toFixed(0);
