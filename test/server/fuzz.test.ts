// Property test: over 2,000 random or mutated bodies (420 outside the slow set: test/slow.ts;
// wrong types, huge and negative numbers, unknown fields, invalid UTF-8, empty arrays, deep nesting, random bytes) sent to every
// generation route. No 5xx, no crash, and every 4xx says what is wrong (naming the mutated field
// where there is one). A small context keeps each accepted request short.
import fc from 'fast-check';
import { slowOr } from '../slow';
import { type TestServer, get, post, startTestServer } from './helpers';

let t: TestServer;
beforeAll(async () => { t = await startTestServer({ maxModelLen: 48 }); });
afterAll(async () => { await t?.close(); });

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Path = (string | number)[];

const BASES: [string, Json][] = [
  ['/invocations', { inputs: 'Hello', parameters: { max_new_tokens: 2, temperature: 0.7, top_p: 0.9, seed: 1, stop: ['x'], details: true } }],
  ['/generate', { inputs: 'Hi there', parameters: { max_new_tokens: 2, top_k: 5, repetition_penalty: 1.1, return_full_text: true, top_n_tokens: 2 } }],
  ['/generate_stream', { inputs: 'Hi', parameters: { max_new_tokens: 2, do_sample: true, truncate: 10 }, stream: true }],
  ['/invocations', { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }], max_tokens: 2, seed: 3, stream: true }],
  ['/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, logprobs: true, top_logprobs: 2, n: 2, stop: 'z' }],
  ['/v1/completions', { model: 'm', prompt: 'Hello', max_tokens: 2, logprobs: 1, presence_penalty: 0.5, frequency_penalty: 0.1 }],
  ['/v1/completions', { prompt: [[1, 15043], [1, 2]], max_tokens: 2, echo: true, stream: true, min_p: 0.1 }],
];

function paths(v: Json, prefix: Path = []): Path[] {
  if (v === null || typeof v !== 'object') return [prefix];
  const keys: (string | number)[] = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
  const below = keys.flatMap((k) => paths((v as Record<string | number, Json>)[k], [...prefix, k]));
  return prefix.length ? [prefix, ...below] : below;
}

function setAt(root: Json, path: Path, value: Json | undefined): Json {
  const copy = structuredClone(root);
  let node = copy as Record<string | number, Json>;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, Json>;
  const last = path[path.length - 1];
  if (value === undefined) {
    if (Array.isArray(node)) node.splice(last as number, 1);
    else delete node[last];
  } else node[last] = value;
  return copy;
}

const deep = fc.integer({ min: 65, max: 400 }).map((d) => {
  let v: Json = 1;
  for (let i = 0; i < d; i++) v = [v];
  return v;
});
const badValue: fc.Arbitrary<Json> = fc.oneof(
  fc.string({ maxLength: 12 }), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(1e308, -1e308, 2 ** 64, -(2 ** 63), -1, 0, -0.5, 1e-300, Number.MAX_SAFE_INTEGER + 2, 4096, 47),
  fc.boolean(), fc.constant(null), fc.constant([] as Json[]), fc.constant({} as Json), fc.constant(''),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }) as fc.Arbitrary<Json>,
  fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>, deep,
);

interface Case { route: string; body: string | Uint8Array; field?: string; expectOk?: boolean }

const mutated: fc.Arbitrary<Case> = fc.integer({ min: 0, max: BASES.length - 1 }).chain((b) => {
  const [route, base] = BASES[b];
  const all = paths(base);
  return fc.oneof(
    // Set one field to a bad value: a 4xx must name it.
    fc.tuple(fc.constantFrom(...all), badValue).map(([path, v]): Case => ({
      route, body: JSON.stringify(setAt(base, path, v)), field: [...path].reverse().find((k) => typeof k === 'string') as string,
    })),
    // Remove a field.
    fc.constantFrom(...all).map((path): Case => ({ route, body: JSON.stringify(setAt(base, path, undefined)) })),
    // Add an unknown field: ignored, so the request succeeds.
    fc.tuple(fc.stringMatching(/^x_[a-z]{1,8}$/), fc.jsonValue({ maxDepth: 2 })).map(([k, v]): Case => ({
      route, body: JSON.stringify({ ...(base as object), [k]: v }), expectOk: true,
    })),
    // Invalid UTF-8 or truncation inside an otherwise valid body.
    fc.tuple(fc.nat(), fc.constantFrom(0xff, 0xc3, 0xed, 0x80)).map(([at, byte]): Case => {
      const bytes = Buffer.from(JSON.stringify(base));
      const i = at % bytes.length;
      return { route, body: Buffer.concat([bytes.subarray(0, i), Buffer.from([byte]), bytes.subarray(i)]) };
    }),
    fc.nat().map((at): Case => { const s = JSON.stringify(base); return { route, body: s.slice(0, at % s.length) }; }),
  );
});

const ROUTES = [...new Set(BASES.map(([r]) => r))];
const garbage: fc.Arbitrary<Case> = fc.tuple(fc.constantFrom(...ROUTES), fc.oneof(
  fc.uint8Array({ maxLength: 64 }) as fc.Arbitrary<string | Uint8Array>,
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? 'null'),
  fc.integer({ min: 65, max: 5000 }).map((d) => '{"inputs":' + '['.repeat(d) + ']'.repeat(d) + '}'),
  fc.string({ maxLength: 30 }),
)).map(([route, body]) => ({ route, body }));

const GLOBAL = /nested deeper|not valid UTF-8|not valid JSON|body is empty|context length|must be <=|input limit|must have at most|maximum input length|exactly one of|"inputs" \(TGI\)/;

async function check(c: Case): Promise<void> {
  const r = await post(`${t.url}${c.route}`, c.body);
  const where = { route: c.route, body: String(c.body).slice(0, 300), status: r.status, response: r.text.slice(0, 300) };
  if (r.status >= 500 || (c.expectOk && r.status !== 200)) throw new Error(`unexpected ${r.status}: ${JSON.stringify(where)}`);
  if (r.status < 400) return;
  const message: unknown = typeof r.json?.error === 'string' ? r.json.error : r.json?.error?.message;
  if (typeof message !== 'string' || message.length < 8) throw new Error(`no error message: ${JSON.stringify(where)}`);
  if (c.field && !message.includes(c.field) && !GLOBAL.test(message)) {
    throw new Error(`the message does not name ${c.field}: ${JSON.stringify(where)}`);
  }
}

// 2,100 bodies in the slow set (CI); 420 of the same sequence in every `npm test`.
const RUNS = slowOr({ mutated: 1700, garbage: 400 }, { mutated: 340, garbage: 80 });

test(`${RUNS.mutated + RUNS.garbage} mutated and random bodies: no 5xx, no crash, every 4xx names the problem`, async () => {
  let n = 0;
  const counted = (c: Case) => { n++; return check(c); };
  await fc.assert(fc.asyncProperty(mutated, counted), { numRuns: RUNS.mutated, seed: 42 });
  await fc.assert(fc.asyncProperty(garbage, counted), { numRuns: RUNS.garbage, seed: 43 });
  expect(n).toBeGreaterThanOrEqual(RUNS.mutated + RUNS.garbage);
  // Still alive and serving.
  expect((await get(`${t.url}/ping`)).status).toBe(200);
  const ok = await post(`${t.url}/generate`, { inputs: 'still there?', parameters: { max_new_tokens: 2 } });
  expect(ok.status).toBe(200);
  expect(t.server.context.host.model!.engine.stats().numBlocksUsed).toBe(0);
}, 180_000);
