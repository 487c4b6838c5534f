/**
 * Protocol fuzzing with fast-check: frames and bodies generated from the protocol's own schemas (their JSON
 * Schema, `Schema.json`, which protocol/schema.ts derives for every schema), then mutated at the value level
 * (a field dropped, retyped, renamed, nested deeper, a discriminator changed…) and at the byte level (truncated,
 * spliced, wrapped), plus arbitrary JSON, arbitrary text and binary frames. Nothing here knows a frame by name: a
 * variant added to a union, or a new REST body, is fuzzed as soon as it is declared.
 *
 * Scale: FUZZ_FRAMES (a Worker binding set from the environment by vitest.config.ts; default 100,000 per CI run)
 * frames in total, split between the targets; FUZZ_SEED replays a run. `npm run fuzz -- --frames 2000000`.
 */
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { LIMITS } from "../../protocol/common.ts";
import { ERROR_CODES } from "../../protocol/errors.ts";
import type { JsonSchema } from "../../protocol/schema.ts";
import { progressLine } from "../../scripts/lib/fuzz-progress.ts";

export const DEFAULT_FUZZ_FRAMES = 100_000;

/** Frames for this run, and the seed that replays it. */
export function fuzzSettings(): { frames: number; seed: number } {
  const frames = Number(env.FUZZ_FRAMES) || DEFAULT_FUZZ_FRAMES;
  const seed = Number(env.FUZZ_SEED) || Date.now() ^ Math.floor(Math.random() * 2 ** 31);
  return { frames, seed };
}

/** A frame or body as it goes on the wire, and how it was made. */
export interface Sample {
  raw: string | ArrayBuffer;
  how: "generated" | "mutated" | "spliced" | "json" | "text" | "binary" | "oversized";
}

// ── Values that fit a schema (near its edges too) ─────────────────────────────────────────────────────────────

const anyJson = fc.jsonValue({ maxDepth: 3 });
const KEYS = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom("__proto__", "constructor", "prototype", "type", "toString", ""));

function strings(schema: JsonSchema): fc.Arbitrary<string> {
  if (Array.isArray(schema.enum)) return fc.constantFrom(...(schema.enum as string[]));
  const min = (schema.minLength as number | undefined) ?? 0;
  const max = (schema.maxLength as number | undefined) ?? 2048;
  const fits = (value: string) => value.length >= min && value.length <= max;
  const small = schema.pattern
    ? fc.stringMatching(new RegExp(schema.pattern as string), { size: "xsmall" }).filter(fits)
    : fc.string({ minLength: min, maxLength: Math.min(max, Math.max(min, 24)), unit: "binary" });
  // Now and then exactly at the limit, or one past it (the boundary a length check must get right).
  const edges = Number.isFinite(max) && max <= LIMITS.sdpChars ? [fc.constant("v".repeat(max)), fc.constant("v".repeat(max + 1))] : [];
  return edges.length ? fc.oneof({ weight: 400, arbitrary: small }, ...edges.map((arbitrary) => ({ weight: 1, arbitrary }))) : small;
}

function numbers(schema: JsonSchema): fc.Arbitrary<number> {
  const min = Math.max((schema.minimum as number | undefined) ?? Number.MIN_SAFE_INTEGER, Number.MIN_SAFE_INTEGER);
  const max = Math.min((schema.maximum as number | undefined) ?? Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  if (schema.type === "integer") return fc.integer({ min, max });
  return fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
}

/** Values valid for `schema` (a JSON Schema as protocol/schema.ts writes them). */
export function fitting(schema: JsonSchema): fc.Arbitrary<unknown> {
  if ("const" in schema) return fc.constant(schema.const);
  if (Array.isArray(schema.oneOf)) return fc.oneof(...(schema.oneOf as JsonSchema[]).map(fitting));
  if (Array.isArray(schema.anyOf)) return fc.oneof(...(schema.anyOf as JsonSchema[]).map(fitting));
  switch (schema.type) {
    case "null":
      return fc.constant(null);
    case "boolean":
      return fc.boolean();
    case "string":
      return strings(schema);
    case "integer":
    case "number":
      return numbers(schema);
    case "array": {
      const min = (schema.minItems as number | undefined) ?? 0;
      const max = (schema.maxItems as number | undefined) ?? 8;
      return fc.array(fitting(schema.items as JsonSchema), { minLength: min, maxLength: Math.min(max, min + 4) });
    }
    case "object": {
      const properties = schema.properties as Record<string, JsonSchema> | undefined;
      if (properties) {
        const model = Object.fromEntries(Object.entries(properties).map(([key, value]) => [key, fitting(value)]));
        return fc.record(model, { requiredKeys: (schema.required as string[] | undefined) ?? [] });
      }
      const values = schema.additionalProperties as JsonSchema | undefined;
      return fc.dictionary(fc.string({ maxLength: 8 }), values ? fitting(values) : anyJson, { maxKeys: 4 });
    }
    default:
      return anyJson; // `json()`: anything
  }
}

// ── Mutations ─────────────────────────────────────────────────────────────────────────────────────────────────

type Path = (string | number)[];

function paths(value: unknown, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix);
  if (typeof value === "object" && value !== null && prefix.length < 6) {
    for (const [key, child] of Object.entries(value)) paths(child, [...prefix, Array.isArray(value) ? Number(key) : key], out);
  }
  return out;
}

function clone(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

/** Sets an own property, even `__proto__` (plain assignment would change the prototype instead). */
function define(target: object, key: string | number, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

const nested = (depth: number, leaf: unknown): unknown => {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { n: value };
  return value;
};

const MUTATIONS = [
  "drop",
  "retype",
  "add-key",
  "rename",
  "nest",
  "wrap",
  "huge-number",
  "negative",
  "fraction",
  "null",
  "empty-string",
  "long-string",
  "swap-type",
] as const;

/** `value` changed at one place, chosen by `pick`. Most results are invalid; some stay valid. */
function mutate(value: unknown, op: (typeof MUTATIONS)[number], pick: number, junk: unknown, key: string, typeNames: string[]): unknown {
  const root = { v: clone(value) } as Record<string, unknown>;
  const all = paths(root.v).map((path) => ["v", ...path] as Path);
  const path = all[pick % all.length]!;
  const parent = path.slice(0, -1).reduce<unknown>((node, step) => (node as Record<string | number, unknown>)[step], root) as Record<
    string | number,
    unknown
  >;
  const last = path.at(-1)!;
  const current = parent[last];
  switch (op) {
    case "drop":
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
      break;
    case "retype":
      parent[last] = junk;
      break;
    case "add-key":
      if (typeof current === "object" && current !== null && !Array.isArray(current)) define(current, key, junk);
      else parent[last] = junk;
      break;
    case "rename":
      if (!Array.isArray(parent) && path.length > 1) {
        delete parent[last];
        define(parent, `${String(last)}${key}`, current);
      }
      break;
    case "nest":
      parent[last] = nested(70 + (pick % 200), current ?? 0);
      break;
    case "wrap":
      parent[last] = [current];
      break;
    case "huge-number":
      parent[last] = [2 ** 53, 2 ** 63, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2][pick % 5];
      break;
    case "negative":
      parent[last] = typeof current === "number" ? -current - 1 : -1;
      break;
    case "fraction":
      parent[last] = typeof current === "number" ? current + 0.5 : 0.5;
      break;
    case "null":
      parent[last] = null;
      break;
    case "empty-string":
      parent[last] = "";
      break;
    case "long-string":
      parent[last] = "x".repeat([257, 2049, 65_537, 70_000][pick % 4]!);
      break;
    case "swap-type":
      if (typeof current === "object" && current !== null && "type" in current)
        (current as Record<string, unknown>).type = typeNames[pick % typeNames.length];
      else parent[last] = typeNames[pick % typeNames.length];
      break;
  }
  return root.v;
}

const SPLICES = ["truncate", "insert", "delete", "duplicate", "bom", "trailing", "lone-surrogate", "control", "swap-quotes"] as const;
const INSERTS = ['"', "{", "}", "[", "]", ",", ":", "\\", "\\u0000", "\u0000", "\ud800", "1e999", "-", "null", "NaN", " "];

/** The serialized text changed at one place: what a broken or hostile peer puts on the wire. */
function splice(text: string, op: (typeof SPLICES)[number], at: number, insert: string): string {
  const i = text.length === 0 ? 0 : at % (text.length + 1);
  switch (op) {
    case "truncate":
      return text.slice(0, i);
    case "insert":
      return text.slice(0, i) + insert + text.slice(i);
    case "delete":
      return text.slice(0, i) + text.slice(i + 1 + (at % 4));
    case "duplicate":
      return text.slice(0, i) + text.slice(i, i + 1 + (at % 16)) + text.slice(i);
    case "bom":
      return `\ufeff${text}`;
    case "trailing":
      return `${text}${insert}`;
    case "lone-surrogate":
      return `${text.slice(0, i)}\udc00${text.slice(i)}`;
    case "control":
      return text.slice(0, i) + String.fromCharCode(at % 32) + text.slice(i);
    case "swap-quotes":
      return text.replaceAll('"', "'");
  }
}

/**
 * Frames for a socket (or bodies for a route) whose accepted values are described by `schema`: valid ones,
 * mutated ones, spliced text, arbitrary JSON, arbitrary text, binary frames and (rarely) oversized ones.
 */
export function samples(schema: JsonSchema, options: { binary?: boolean; oversized?: boolean; validWeight?: number } = {}): fc.Arbitrary<Sample> {
  const typeNames = Array.isArray(schema.oneOf)
    ? (schema.oneOf as JsonSchema[]).map((variant) => String((variant.properties as Record<string, JsonSchema>).type?.const))
    : ["x"];
  const valid = fitting(schema);
  const text = (value: unknown) => (value === undefined ? "" : JSON.stringify(value));
  const arbitraries: fc.WeightedArbitrary<Sample>[] = [
    { weight: options.validWeight ?? 30, arbitrary: valid.map((value) => ({ raw: text(value), how: "generated" }) as Sample) },
    {
      weight: 40,
      arbitrary: fc
        .tuple(valid, fc.constantFrom(...MUTATIONS), fc.nat(), anyJson, KEYS)
        .map(([value, op, pick, junk, key]) => ({ raw: text(mutate(value, op, pick, junk, key, typeNames)), how: "mutated" }) as Sample),
    },
    {
      weight: 14,
      arbitrary: fc
        .tuple(valid, fc.constantFrom(...SPLICES), fc.nat(), fc.constantFrom(...INSERTS))
        .map(([value, op, at, insert]) => ({ raw: splice(text(value), op, at, insert), how: "spliced" }) as Sample),
    },
    { weight: 8, arbitrary: anyJson.map((value) => ({ raw: JSON.stringify(value), how: "json" }) as Sample) },
    { weight: 5, arbitrary: fc.string({ maxLength: 64, unit: "binary" }).map((raw) => ({ raw, how: "text" }) as Sample) },
  ];
  if (options.binary ?? true) {
    arbitraries.push({
      weight: 2,
      arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => ({ raw: bytes.slice().buffer, how: "binary" }) as Sample),
    });
  }
  if (options.oversized ?? true) {
    // Over the 256 KiB frame limit (in bytes: multi-byte characters count for more than one).
    const big = fc
      .constantFrom("x", "€")
      .map((unit) => ({ raw: `{"type":"ping","pad":"${unit.repeat(unit === "x" ? LIMITS.frameBytes : 90_000)}"}`, how: "oversized" }) as Sample);
    arbitraries.push({ weight: 1, arbitrary: big });
  }
  return fc.oneof(...arbitraries);
}

// ── Invariants ────────────────────────────────────────────────────────────────────────────────────────────────

/** How often a running target prints its progress (a nightly run takes minutes; `npm run fuzz` sums the lines). */
export const PROGRESS_EVERY_MS = 10_000;

/** Tally of one fuzz target: its progress printed every PROGRESS_EVERY_MS while it runs, its summary at the end. */
export class Tally {
  readonly target: string;
  /** Frames this target is to send. */
  readonly planned: number;
  frames = 0;
  overSocket = 0;
  rejections = 0;
  readonly byHow = new Map<string, number>();
  readonly codes = new Map<string, number>();
  readonly problems: string[] = [];
  readonly started = Date.now();
  finished: number | undefined;
  #reported = Date.now();

  constructor(target: string, planned: number) {
    this.target = target;
    this.planned = planned;
  }

  sent(sample: Sample, overSocket = false): void {
    this.frames++;
    if (overSocket) this.overSocket++;
    this.byHow.set(sample.how, (this.byHow.get(sample.how) ?? 0) + 1);
    // Date.now() moves on across the batches' I/O, so a check per frame is cheap and a report at most one batch late.
    if (Date.now() - this.#reported >= PROGRESS_EVERY_MS) this.#progress();
  }

  #progress(): void {
    this.#reported = Date.now();
    const rate = this.frames / Math.max((this.#reported - this.started) / 1000, 0.001);
    console.log(progressLine(this.target, this.frames, this.planned, rate)); // scripts/fuzz.ts sums these
  }

  /** An error answer: its code must be one of src/errors.ts (and, over HTTP, answered with that code's status). */
  rejected(code: unknown, status?: number): void {
    this.rejections++;
    const known = typeof code === "string" && Object.hasOwn(ERROR_CODES, code);
    if (!known) this.problem(`unknown error code ${JSON.stringify(code)}`);
    else {
      this.codes.set(code, (this.codes.get(code) ?? 0) + 1);
      if (status !== undefined && ERROR_CODES[code as keyof typeof ERROR_CODES].status !== status)
        this.problem(`${code} answered with HTTP ${status}`);
    }
  }

  finish(): void {
    this.finished = Date.now();
    this.#progress();
  }

  problem(what: string): void {
    if (this.problems.length < 20) this.problems.push(what);
  }

  summary(): string {
    const seconds = (((this.finished ?? Date.now()) - this.started) / 1000).toFixed(1);
    const how = [...this.byHow].map(([name, count]) => `${name} ${count}`).join(", ");
    const codes = [...this.codes]
      .sort((a, b) => b[1] - a[1])
      .map(([code, count]) => `${code} ${count}`)
      .join(", ");
    return `${this.target}: ${this.frames} frames in ${seconds} s (${this.overSocket} over the real socket or fetch; ${how}); ${this.rejections} rejections, all coded: ${codes}`;
  }
}

/** A short, printable form of a frame for failure messages. */
export function show(raw: string | ArrayBuffer): string {
  if (typeof raw !== "string") return `<binary ${raw.byteLength} bytes>`;
  return raw.length > 300 ? `${JSON.stringify(raw.slice(0, 300))}… (${raw.length} chars)` : JSON.stringify(raw);
}
