// Structured output as the three APIs ask for it, to one GrammarSpec, compiled by the engine:
//   OpenAI  response_format {type: json_schema, json_schema: {schema, strict}} | {type: json_object}
//   vLLM    guided_json, guided_regex, guided_choice, guided_grammar (EBNF)
//   TGI     parameters.grammar {type: json | regex, value}
// A schema is checked before xgrammar sees it: keywords xgrammar would silently ignore (so the
// output could break the schema) are refused by name.
import { z } from 'zod';
import type { Grammar, GrammarSpec } from '../engine/engine';
import { XgrammarError } from '../engine/xgrammar';
import { validationError } from './errors';
import type { ServedModel } from './model';

const schemaValue = z.union([z.record(z.string(), z.unknown()), z.boolean()], { error: 'must be a JSON schema (an object)' });

export const responseFormatSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }),
  z.object({ type: z.literal('json_object') }),
  z.object({
    type: z.literal('json_schema'),
    json_schema: z.object({
      name: z.string().nullish(),
      description: z.string().nullish(),
      schema: schemaValue.nullish(),
      strict: z.boolean().nullish(),
    }),
  }),
], { error: 'type must be "text", "json_object" or "json_schema"' });

/** vLLM's guided decoding fields (chat and completions). */
export const guidedFields = {
  guided_json: z.union([z.string(), z.record(z.string(), z.unknown())], { error: 'must be a JSON schema (an object or its JSON text)' }).nullish(),
  guided_regex: z.string().nullish(),
  guided_choice: z.array(z.string()).min(1).max(256).nullish(),
  guided_grammar: z.string().nullish(),
  guided_decoding_backend: z.string().nullish(),   // accepted and ignored: xgrammar is the backend
  guided_whitespace_pattern: z.null({ error: 'guided_whitespace_pattern is not supported' }).optional(),
};

export const tgiGrammarSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('json'), value: z.union([z.string(), z.record(z.string(), z.unknown())], { error: 'must be a JSON schema (an object or its JSON text)' }) }),
  z.object({ type: z.literal('regex'), value: z.string() }),
  z.object({ type: z.literal('json_object'), value: z.unknown().optional() }),
], { error: 'type must be "json", "regex" or "json_object"' });

export type ResponseFormat = z.infer<typeof responseFormatSchema>;
export type TgiGrammar = z.infer<typeof tgiGrammarSchema>;
type Guided = { [K in keyof typeof guidedFields]?: z.infer<(typeof guidedFields)[K]> };

/** What to compile, and the request field it came from (for error messages). */
export interface GrammarRequest { spec: GrammarSpec; param: string }

// JSON Schema keywords that xgrammar 0.1.27 ignores but that constrain a value: honouring the
// schema is impossible with them, so they are refused rather than dropped.
const UNSUPPORTED_KEYWORDS = new Set([
  'not', 'if', 'then', 'else', 'contains', 'minContains', 'maxContains', 'dependentRequired',
  'dependentSchemas', 'dependencies', '$dynamicRef', '$recursiveRef',
]);
const SCHEMA_MAPS = ['properties', 'patternProperties', '$defs', 'definitions'];
const SCHEMA_LISTS = ['anyOf', 'oneOf', 'allOf', 'prefixItems'];
const SCHEMA_ONES = ['items', 'additionalProperties', 'propertyNames', 'unevaluatedProperties', 'unevaluatedItems'];
const TYPES = new Set(['object', 'array', 'string', 'number', 'integer', 'boolean', 'null']);

const MAX_INTEGER_SPAN = 1000;
const BOUNDS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf'];

/**
 * Refuses a schema that is malformed or uses a keyword xgrammar cannot honour, naming where, and
 * returns it ready for xgrammar. xgrammar 0.1.27 turns numeric bounds into digit patterns that
 * are wrong for some ranges (-5..120 admits 121; -1..1 admits -1.4), so a bounded integer becomes
 * the enum of its values, and bounds on non-integer numbers are refused.
 */
export function checkSchema(schema: unknown, param: string, at = ''): unknown {
  const where = at || 'the schema root';
  if (typeof schema === 'boolean') return schema;
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    throw validationError(`${param}: invalid JSON schema at ${where}: a schema must be an object`, param);
  }
  const s = { ...(schema as Record<string, unknown>) };
  for (const [key, value] of Object.entries(s)) {
    const path = at ? `${at}.${key}` : key;
    if (UNSUPPORTED_KEYWORDS.has(key) || (key === 'uniqueItems' && value === true)) {
      throw validationError(`${param}: unsupported JSON schema keyword "${key}" at ${where}`, param);
    }
    const bad = (what: string) => validationError(`${param}: invalid JSON schema: ${path} must be ${what}`, param);
    if (key === 'type') {
      const types = Array.isArray(value) ? value : [value];
      if (!types.length || !types.every((t) => typeof t === 'string' && TYPES.has(t))) {
        throw bad(`one of ${[...TYPES].join(', ')} (or an array of them)`);
      }
    } else if (key === 'required') {
      if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw bad('an array of strings');
    } else if (key === 'enum') {
      if (!Array.isArray(value) || value.length === 0) throw bad('a non-empty array');
    } else if (BOUNDS.includes(key)) {
      if (typeof value !== 'number' || !Number.isFinite(value)) throw bad('a number');
      if (key === 'multipleOf' && value <= 0) throw bad('greater than 0');
    } else if (['minLength', 'maxLength', 'minItems', 'maxItems', 'minProperties', 'maxProperties'].includes(key)) {
      if (!Number.isInteger(value) || (value as number) < 0) throw bad('a non-negative integer');
    } else if (key === 'pattern') {
      if (typeof value !== 'string') throw bad('a string');
      checkRegex(value, param, `${path}: `);
    } else if (SCHEMA_MAPS.includes(key)) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('an object of schemas');
      s[key] = Object.fromEntries(Object.entries(value).map(([name, sub]) => [name, checkSchema(sub, param, `${path}.${name}`)]));
    } else if (SCHEMA_LISTS.includes(key)) {
      if (!Array.isArray(value) || value.length === 0) throw bad('a non-empty array of schemas');
      s[key] = value.map((sub, i) => checkSchema(sub, param, `${path}[${i}]`));
    } else if (SCHEMA_ONES.includes(key)) {
      s[key] = checkSchema(value, param, path);
    }
  }
  return exactBounds(s, param, where);
}

/** A bounded integer as the enum of its values; bounds on other numbers refused. */
function exactBounds(s: Record<string, unknown>, param: string, where: string): Record<string, unknown> {
  const bounds = BOUNDS.filter((k) => k in s);
  if (!bounds.length || 'enum' in s || 'const' in s) return s;
  if (s.type !== 'integer') {
    throw validationError(`${param}: unsupported JSON schema keyword "${bounds[0]}" at ${where}: numeric bounds are supported on {"type": "integer"} with both ends (at most ${MAX_INTEGER_SPAN} values), or use an enum`, param);
  }
  const num = (k: string) => s[k] as number | undefined;
  const lo = Math.max(num('minimum') ?? -Infinity, num('exclusiveMinimum') !== undefined ? Math.floor(num('exclusiveMinimum')!) + 1 : -Infinity);
  const hi = Math.min(num('maximum') ?? Infinity, num('exclusiveMaximum') !== undefined ? Math.ceil(num('exclusiveMaximum')!) - 1 : Infinity);
  const from = Math.ceil(lo);
  const to = Math.floor(hi);
  if (!Number.isFinite(from) || !Number.isFinite(to) || to - from + 1 > MAX_INTEGER_SPAN) {
    throw validationError(`${param}: unsupported JSON schema keyword "${bounds[0]}" at ${where}: integer bounds need both ends and at most ${MAX_INTEGER_SPAN} values`, param);
  }
  const step = num('multipleOf');
  const values: number[] = [];
  for (let v = from; v <= to; v++) if (step === undefined || Number.isInteger(v / step)) values.push(v);
  if (!values.length) throw validationError(`${param}: invalid JSON schema at ${where}: no integer meets its bounds`, param);
  const out = Object.fromEntries(Object.entries(s).filter(([k]) => !BOUNDS.includes(k) && k !== 'type'));
  return { ...out, enum: values };
}

/** Refuses a regular expression that does not compile (JavaScript's syntax, which xgrammar's follows). */
function checkRegex(pattern: string, param: string, prefix = ''): void {
  try {
    new RegExp(pattern);
  } catch (e) {
    throw validationError(`${param}: ${prefix}the regular expression does not compile: ${(e as Error).message}`, param);
  }
}

function jsonSchemaSpec(value: string | Record<string, unknown> | boolean, param: string): GrammarSpec {
  let schema: unknown = value;
  if (typeof value === 'string') {
    try {
      schema = JSON.parse(value);
    } catch (e) {
      throw validationError(`${param}: the schema is not valid JSON: ${(e as Error).message}`, param);
    }
  }
  return { type: 'json_schema', schema: JSON.stringify(checkSchema(schema, param)) };
}

/** The grammar of an OpenAI/vLLM body, or undefined for free text. At most one may be given. */
export function openAiGrammar(b: Guided & { response_format?: ResponseFormat | null }): GrammarRequest | undefined {
  const found: GrammarRequest[] = [];
  const rf = b.response_format;
  if (rf?.type === 'json_object') found.push({ spec: { type: 'json_object' }, param: 'response_format' });
  if (rf?.type === 'json_schema') {
    const param = 'response_format';
    found.push({ spec: rf.json_schema.schema == null ? { type: 'json_object' } : jsonSchemaSpec(rf.json_schema.schema, param), param });
  }
  if (b.guided_json != null) found.push({ spec: jsonSchemaSpec(b.guided_json, 'guided_json'), param: 'guided_json' });
  if (b.guided_regex != null) {
    checkRegex(b.guided_regex, 'guided_regex');
    found.push({ spec: { type: 'regex', pattern: b.guided_regex }, param: 'guided_regex' });
  }
  if (b.guided_choice != null) found.push({ spec: { type: 'choice', choices: b.guided_choice }, param: 'guided_choice' });
  if (b.guided_grammar != null) found.push({ spec: { type: 'ebnf', grammar: b.guided_grammar }, param: 'guided_grammar' });
  if (found.length > 1) {
    throw validationError(`only one of response_format (json), guided_json, guided_regex, guided_choice and guided_grammar may be given; got ${found.map((f) => f.param).join(', ')}`, found[1].param);
  }
  return found[0];
}

/** The grammar of TGI's parameters.grammar. */
export function tgiGrammar(g: TgiGrammar | null | undefined): GrammarRequest | undefined {
  if (g == null) return undefined;
  const param = 'grammar';
  if (g.type === 'json') return { spec: jsonSchemaSpec(g.value, 'grammar.value'), param };
  if (g.type === 'json_object') return { spec: { type: 'json_object' }, param };
  checkRegex(g.value, 'grammar.value');
  return { spec: { type: 'regex', pattern: g.value }, param };
}

/** Compiles (or takes from the cache) a request's grammar; xgrammar's refusal becomes a 4xx. */
export async function compileGrammar(model: ServedModel, req: GrammarRequest | undefined): Promise<Grammar | undefined> {
  if (!req) return undefined;
  if (!model.engine.tokenizer) {
    throw validationError(`${req.param}: structured output needs the model's tokenizer.json, which this model lacks`, req.param);
  }
  try {
    return await model.engine.compileGrammar(req.spec);
  } catch (e) {
    if (e instanceof XgrammarError) throw validationError(`${req.param}: ${e.message}`, req.param);
    throw e;
  }
}
