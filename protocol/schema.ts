/**
 * A small schema toolkit: each schema validates unknown input into a typed value and describes itself as JSON
 * Schema (for the OpenAPI document). It exists instead of a general-purpose library because every relayed frame
 * passes through it on the hot path, and because the gateway, the SDK and the runtime agent all import it: it
 * must stay tiny, dependency-free and fast.
 */
import { err, ok, type Result } from "./result.ts";

export type JsonSchema = { [key: string]: unknown };

/** Thrown by `Schema.check`; `path` points at the offending field (`$.candidates[3].sdp_mid`). */
export class SchemaError extends Error {
  readonly path: string;
  readonly problem: string;
  /** Set when the failure has a more precise error code than a generic mismatch (`FORBIDDEN_KEYS`, strict objects). */
  readonly code: "FORBIDDEN_KEY" | "UNKNOWN_FIELD" | undefined;

  constructor(path: string, problem: string, code?: "FORBIDDEN_KEY" | "UNKNOWN_FIELD") {
    super(`${path}: ${problem}`);
    this.name = "SchemaError";
    this.path = path;
    this.problem = problem;
    this.code = code;
  }
}

export interface Schema<T> {
  /** Returns the value typed as T, or throws a SchemaError. Objects are returned as new plain objects. */
  check(value: unknown, path?: string): T;
  readonly json: JsonSchema;
  /** Set on optional fields of an object; an absent or undefined field is then accepted. */
  readonly optional?: true;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

/** The value typed as T, or the SchemaError naming the offending field. */
export type ParseResult<T> = Result<T, SchemaError>;

export function parse<T>(schema: Schema<T>, value: unknown): ParseResult<T> {
  try {
    return ok(schema.check(value, "$"));
  } catch (error) {
    if (error instanceof SchemaError) return err(error);
    throw error;
  }
}

function fail(path: string, problem: string): never {
  throw new SchemaError(path, problem);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

export interface StringRules {
  min?: number;
  max?: number;
  pattern?: RegExp;
  description?: string;
}

export function string(rules: StringRules = {}): Schema<string> {
  const { min = 0, max = Number.POSITIVE_INFINITY, pattern, description } = rules;
  return {
    check(value, path = "$") {
      if (typeof value !== "string") fail(path, `expected string, got ${describe(value)}`);
      if (value.length < min) fail(path, `must be at least ${min} characters`);
      if (value.length > max) fail(path, `must be at most ${max} characters`);
      if (pattern && !pattern.test(value)) fail(path, `does not match ${pattern.source}`);
      return value;
    },
    json: {
      type: "string",
      ...(min > 0 && { minLength: min }),
      ...(Number.isFinite(max) && { maxLength: max }),
      ...(pattern && { pattern: pattern.source }),
      ...(description && { description }),
    },
  };
}

export interface NumberRules {
  min?: number;
  max?: number;
  integer?: boolean;
  description?: string;
}

export function number(rules: NumberRules = {}): Schema<number> {
  const { min = Number.NEGATIVE_INFINITY, max = Number.POSITIVE_INFINITY, integer = false, description } = rules;
  return {
    check(value, path = "$") {
      if (typeof value !== "number" || !Number.isFinite(value)) fail(path, `expected number, got ${describe(value)}`);
      if (integer && !Number.isInteger(value)) fail(path, "must be an integer");
      if (value < min) fail(path, `must be ≥ ${min}`);
      if (value > max) fail(path, `must be ≤ ${max}`);
      return value;
    },
    json: {
      type: integer ? "integer" : "number",
      ...(Number.isFinite(min) && { minimum: min }),
      ...(Number.isFinite(max) && { maximum: max }),
      ...(description && { description }),
    },
  };
}

export const integer = (rules: Omit<NumberRules, "integer"> = {}) => number({ ...rules, integer: true });

export function boolean(): Schema<boolean> {
  return {
    check(value, path = "$") {
      if (typeof value !== "boolean") fail(path, `expected boolean, got ${describe(value)}`);
      return value;
    },
    json: { type: "boolean" },
  };
}

export function literal<const T extends string | number | boolean>(expected: T): Schema<T> {
  return {
    check(value, path = "$") {
      if (value !== expected) fail(path, `expected ${JSON.stringify(expected)}`);
      return expected;
    },
    json: { const: expected },
  };
}

export function oneOf<const T extends readonly string[]>(values: T): Schema<T[number]> {
  const allowed = new Set<unknown>(values);
  return {
    check(value, path = "$") {
      if (!allowed.has(value)) fail(path, `expected one of ${values.join(", ")}`);
      return value as T[number];
    },
    json: { type: "string", enum: [...values] },
  };
}

/**
 * Deepest nesting of arrays and objects accepted in a pass-through JSON value. JSON.parse takes any depth, but the
 * serializers downstream (structured clone into storage and RPC, JSON.stringify onto sockets) recurse and overflow
 * the stack a few thousand levels down; refused here, such a value is a FRAME_INVALID or INVALID_REQUEST.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * Any JSON value, passed through untouched (command payloads are validated by the model's own schemas), nested at
 * most MAX_JSON_DEPTH levels.
 */
export function json(description?: string): Schema<unknown> {
  return {
    check(value, path = "$") {
      if (value === undefined) fail(path, "is required");
      if (nestsDeeperThan(value, MAX_JSON_DEPTH)) fail(path, `must not nest deeper than ${MAX_JSON_DEPTH} levels`);
      return value;
    },
    json: description ? { description } : {},
  };
}

/** Whether arrays and objects in `value` nest more than `limit` levels (iterative: any depth is safe to check). */
function nestsDeeperThan(value: unknown, limit: number): boolean {
  if (typeof value !== "object" || value === null) return false;
  const pending: { node: object; depth: number }[] = [{ node: value, depth: 1 }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    if (next.depth > limit) return true;
    for (const child of Object.values(next.node)) {
      if (typeof child === "object" && child !== null) pending.push({ node: child, depth: next.depth + 1 });
    }
  }
  return false;
}

export interface OptionalSchema<T> extends Schema<T | undefined> {
  readonly optional: true;
}

export function optional<T>(inner: Schema<T>): OptionalSchema<T> {
  return {
    check(value, path = "$") {
      return value === undefined ? undefined : inner.check(value, path);
    },
    json: inner.json,
    optional: true,
  };
}

export function nullable<T>(inner: Schema<T>): Schema<T | null> {
  return {
    check(value, path = "$") {
      return value === null ? null : inner.check(value, path);
    },
    json: { anyOf: [inner.json, { type: "null" }] },
  };
}

export function array<T>(item: Schema<T>, rules: { min?: number; max?: number } = {}): Schema<T[]> {
  const { min = 0, max = Number.POSITIVE_INFINITY } = rules;
  return {
    check(value, path = "$") {
      if (!Array.isArray(value)) fail(path, `expected array, got ${describe(value)}`);
      if (value.length < min) fail(path, `must have at least ${min} items`);
      if (value.length > max) fail(path, `must have at most ${max} items`);
      const out = new Array<T>(value.length);
      for (let i = 0; i < value.length; i++) out[i] = item.check(value[i], `${path}[${i}]`);
      return out;
    },
    json: {
      type: "array",
      items: item.json,
      ...(min > 0 && { minItems: min }),
      ...(Number.isFinite(max) && { maxItems: max }),
    },
  };
}

/**
 * Keys a record refuses. JSON.parse makes `"__proto__"` an ordinary own key, but copying it into a new object with
 * `out[key] = …` would set that object's prototype instead: the key would vanish from every check that iterates
 * the record (a FileRef under it would skip its upload check) while still being inherited by lookups. The other two
 * are refused with it because code downstream (ours, a runtime's, a model's) treats them as special just as often.
 */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

export function record<T>(value: Schema<T>, rules: { maxKeys?: number } = {}): Schema<Record<string, T>> {
  const { maxKeys = Number.POSITIVE_INFINITY } = rules;
  return {
    check(input, path = "$") {
      if (!isPlainObject(input)) fail(path, `expected object, got ${describe(input)}`);
      const keys = Object.keys(input);
      if (keys.length > maxKeys) fail(path, `must have at most ${maxKeys} keys`);
      const out: Record<string, T> = {};
      for (const key of keys) {
        if (FORBIDDEN_KEYS.has(key)) throw new SchemaError(`${path}.${key}`, `the key ${key} is not accepted`, "FORBIDDEN_KEY");
        out[key] = value.check(input[key], `${path}.${key}`);
      }
      return out;
    },
    json: { type: "object", additionalProperties: value.json, propertyNames: { not: { enum: [...FORBIDDEN_KEYS] } } },
  };
}

type Shape = Record<string, Schema<unknown>>;
type OptionalKeys<S extends Shape> = { [K in keyof S]: S[K] extends { optional: true } ? K : never }[keyof S];
type Simplify<T> = { [K in keyof T]: T[K] } & {};
export type ObjectOf<S extends Shape> = Simplify<
  { [K in Exclude<keyof S, OptionalKeys<S>>]: Infer<S[K]> } & { [K in OptionalKeys<S>]?: Infer<S[K]> }
>;

export interface ObjectSchema<S extends Shape> extends Schema<ObjectOf<S>> {
  readonly shape: S;
}

/**
 * An object with known fields. Unknown fields are dropped (forward compatibility: newer peers may add fields)
 * unless `strict` is set, in which case they are rejected (code UNKNOWN_FIELD), all of them named at once, with
 * the fields that exist and `hint` (what to send instead). Strict suits request bodies whose fields narrow or
 * restrict something: a misspelt restriction silently dropped would grant more than was asked for.
 */
export function object<S extends Shape>(shape: S, options: { strict?: boolean; description?: string; hint?: string } = {}): ObjectSchema<S> {
  const entries = Object.entries(shape);
  const required = entries.filter(([, schema]) => !schema.optional).map(([key]) => key);
  return {
    shape,
    check(value, path = "$") {
      if (!isPlainObject(value)) fail(path, `expected object, got ${describe(value)}`);
      if (options.strict) {
        const unknown = Object.keys(value).filter((key) => !Object.hasOwn(shape, key));
        if (unknown.length > 0) throw unknownFields(path, unknown, Object.keys(shape), options.hint);
      }
      const out: Record<string, unknown> = {};
      for (const [key, schema] of entries) {
        const field = value[key];
        if (field === undefined) {
          if (!schema.optional) fail(`${path}.${key}`, "is required");
          continue;
        }
        out[key] = schema.check(field, `${path}.${key}`);
      }
      return out as ObjectOf<S>;
    },
    json: {
      type: "object",
      properties: Object.fromEntries(entries.map(([key, schema]) => [key, schema.json])),
      ...(required.length > 0 && { required }),
      ...(options.strict && { additionalProperties: false }),
      ...(options.description && { description: options.description }),
    },
  };
}

type Variants = Record<string, ObjectSchema<Shape>>;
export type UnionOf<K extends string, V extends Variants> = {
  [T in keyof V & string]: Simplify<{ [P in K]: T } & Infer<V[T]>>;
}[keyof V & string];

/**
 * A discriminated union: `variants[value[key]]` validates the rest. One property lookup picks the variant, so
 * dispatch cost does not grow with the number of message types.
 */
export function union<const K extends string, V extends Variants>(key: K, variants: V): Schema<UnionOf<K, V>> {
  const names = Object.keys(variants);
  return {
    check(value, path = "$") {
      if (!isPlainObject(value)) fail(path, `expected object, got ${describe(value)}`);
      const tag = value[key];
      if (typeof tag !== "string" || !Object.hasOwn(variants, tag)) {
        fail(`${path}.${key}`, `expected one of ${names.join(", ")}`);
      }
      const out = variants[tag]!.check(value, path) as Record<string, unknown>;
      out[key] = tag;
      return out as UnionOf<K, V>;
    },
    json: {
      oneOf: names.map((name) => {
        const variant = variants[name]!.json as { properties?: object; required?: string[] };
        return {
          ...variant,
          properties: { [key]: { const: name }, ...variant.properties },
          required: [key, ...(variant.required ?? [])],
        };
      }),
      discriminator: { propertyName: key },
    },
  };
}

function unknownFields(path: string, unknown: string[], known: string[], hint: string | undefined): SchemaError {
  const list = (keys: string[]) => keys.map((key) => JSON.stringify(key)).join(", ");
  const problem = `unknown field${unknown.length > 1 ? "s" : ""} ${list(unknown)}; the fields here are ${list(known)}${hint ? `. ${hint}` : ""}`;
  return new SchemaError(path, problem, "UNKNOWN_FIELD");
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
