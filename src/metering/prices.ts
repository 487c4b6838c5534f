/**
 * Prices per model in USD per second of GPU time, from the var PRICES_USD_PER_SECOND: a JSON object of model name
 * to price, where "*" prices every model not named. Credits: 10,000 credits = 1 USD.
 */
import { ApiError } from "../errors.ts";

export const CREDITS_PER_USD = 10_000;
/** Used when PRICES_USD_PER_SECOND is unset, and for "*" when the table does not name it. */
export const DEFAULT_USD_PER_SECOND = 0.001;

export type PriceTable = ReadonlyMap<string, number>;

let cached: { source: string; table: PriceTable } | undefined;

/** Parses the price table (cached per source text). A malformed table is a configuration error: MISCONFIGURED. */
export function priceTable(env: { PRICES_USD_PER_SECOND?: string }): PriceTable {
  const source = env.PRICES_USD_PER_SECOND ?? "";
  if (cached?.source !== source) cached = { source, table: parsePrices(source) };
  return cached.table;
}

export function parsePrices(source: string): PriceTable {
  const table = new Map<string, number>([["*", DEFAULT_USD_PER_SECOND]]);
  if (source.trim() === "") return table;
  let parsed: unknown;
  try {
    parsed = JSON.parse(source);
  } catch {
    throw misconfigured("is not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw misconfigured("must be a JSON object");
  for (const [model, price] of Object.entries(parsed)) {
    if (typeof price !== "number" || !Number.isFinite(price) || price < 0) throw misconfigured(`${model}: the price must be a number ≥ 0`);
    table.set(model, price);
  }
  return table;
}

function misconfigured(problem: string): ApiError {
  return new ApiError("MISCONFIGURED", `PRICES_USD_PER_SECOND ${problem}.`);
}

export function usdPerSecond(table: PriceTable, model: string): number {
  return table.get(model) ?? table.get("*")!;
}

export const toCredits = (usd: number): number => usd * CREDITS_PER_USD;
