// Structured output on the demo model (random weights: only the grammar can make the output
// parse), through the official openai client and TGI's routes: JSON schema, regex, choice, EBNF,
// streaming, batch invariance of unconstrained neighbours, and the refusals.
import Ajv from 'ajv';
import OpenAI from 'openai';
import { type TestServer, post, sseData, startTestServer } from './helpers';

let t: TestServer;
let client: OpenAI;
beforeAll(async () => {
  t = await startTestServer();
  client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => { await t?.close(); });

const messages = [{ role: 'user' as const, content: 'Describe a person as JSON.' }];

// Nested objects, arrays, enums, required fields, bounded numbers, a pattern, a length limit.
const person = {
  type: 'object',
  properties: {
    name: { type: 'string', enum: ['ada', 'bob', 'cy'] },
    age: { type: 'integer', minimum: -5, maximum: 120 },
    tags: { type: 'array', items: { type: 'string', enum: ['x', 'y'] }, minItems: 1, maxItems: 3 },
    address: {
      type: 'object',
      properties: { city: { type: 'string', maxLength: 6 }, zip: { type: 'string', pattern: '^[0-9]{5}$' } },
      required: ['city', 'zip'],
    },
    active: { type: 'boolean' },
  },
  required: ['name', 'age', 'tags', 'address', 'active'],
};
const validatePerson = new Ajv().compile(person);

function expectPerson(text: string): void {
  const value = JSON.parse(text);
  if (!validatePerson(value)) throw new Error(`${text}: ${JSON.stringify(validatePerson.errors)}`);
}

test('response_format json_schema: 50 seeds give JSON that validates against the schema', async () => {
  const seeds = Array.from({ length: 50 }, (_, i) => i);
  const replies = await Promise.all(seeds.map((seed) => client.chat.completions.create({
    model: 'demo', messages, max_tokens: 200, seed, temperature: 1,
    response_format: { type: 'json_schema', json_schema: { name: 'person', schema: person, strict: true } },
  })));
  for (const r of replies) {
    expect(r.choices[0].finish_reason).toBe('stop');
    expectPerson(r.choices[0].message.content!);
  }
  expect(new Set(replies.map((r) => r.choices[0].message.content)).size).toBeGreaterThan(40);
});

test('completions: guided_json and response_format; streaming chat gives the same JSON', async () => {
  const extra = { guided_json: person } as object;
  const c = await client.completions.create({ model: 'demo', prompt: 'A person:', max_tokens: 200, seed: 3, ...extra });
  expect(c.choices[0].finish_reason).toBe('stop');
  expectPerson(c.choices[0].text);
  const rf = { response_format: { type: 'json_schema', json_schema: { name: 'p', schema: person } } } as object;
  const c2 = await client.completions.create({ model: 'demo', prompt: 'A person:', max_tokens: 200, seed: 3, ...rf });
  expect(c2.choices[0].text).toBe(c.choices[0].text);

  const body = { model: 'demo', messages, max_tokens: 200, seed: 8,
    response_format: { type: 'json_schema' as const, json_schema: { name: 'p', schema: person } } };
  const whole = await client.chat.completions.create(body);
  let text = '';
  let chunks = 0;
  for await (const chunk of await client.chat.completions.create({ ...body, stream: true })) {
    chunks++;
    text += chunk.choices[0]?.delta.content ?? '';
  }
  expect(chunks).toBeGreaterThan(5);
  expect(text).toBe(whole.choices[0].message.content);
  expectPerson(text);
});

test('TGI grammar regex on /generate, /generate_stream and /invocations; json on /invocations', async () => {
  const grammar = { type: 'regex', value: '[0-9]{3}-[a-z]{2,4}' };
  const pattern = /^[0-9]{3}-[a-z]{2,4}$/;
  const texts = await Promise.all(Array.from({ length: 20 }, async (_, seed) => {
    const r = await post(`${t.url}/generate`, { inputs: 'Code:', parameters: { grammar, max_new_tokens: 20, do_sample: true, seed } });
    expect(r.status).toBe(200);
    expect(r.json.generated_text).toMatch(pattern);
    return r.json.generated_text as string;
  }));
  expect(new Set(texts).size).toBeGreaterThan(10);

  const s = await fetch(`${t.url}/generate_stream`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ inputs: 'Code:', parameters: { grammar, max_new_tokens: 20, do_sample: true, seed: 0 } }),
  });
  const events = sseData(await s.text()).map((d) => JSON.parse(d));
  expect(events.at(-1).generated_text).toBe(texts[0]);
  expect(events.map((e) => e.token.text).join('')).toBe(texts[0]);

  const inv = await post(`${t.url}/invocations`, { inputs: 'Code:', parameters: { grammar, max_new_tokens: 20, do_sample: true, seed: 0, details: true } });
  expect(inv.json[0].generated_text).toBe(texts[0]);
  expect(inv.json[0].details.finish_reason).toBe('eos_token');   // the grammar ended it
  const json = await post(`${t.url}/invocations`, {
    inputs: 'A person:', parameters: { grammar: { type: 'json', value: person }, max_new_tokens: 200, do_sample: true, seed: 1 },
  });
  expect(json.status).toBe(200);
  expectPerson(json.json[0].generated_text);
});

test('guided_choice returns one of the choices; json_object starts an object; guided_regex and guided_grammar match', async () => {
  const choices = ['yes', 'no', 'not sure'];
  const seen = new Set<string>();
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const r = await client.chat.completions.create({ model: 'demo', messages, max_tokens: 10, seed, ...{ guided_choice: choices } as object });
    expect(choices).toContain(r.choices[0].message.content);
    expect(r.choices[0].finish_reason).toBe('stop');
    seen.add(r.choices[0].message.content!);
  }
  expect(seen.size).toBeGreaterThan(1);
  // json_object: any object (random weights rarely close one within a few tokens, so check the start).
  const obj = await client.chat.completions.create({ model: 'demo', messages, max_tokens: 6, seed: 1, response_format: { type: 'json_object' } });
  expect(obj.choices[0].message.content).toMatch(/^\{/);
  const re = await client.completions.create({ model: 'demo', prompt: 'Date:', max_tokens: 20, seed: 2, ...{ guided_regex: '20[0-9]{2}-(0[1-9]|1[0-2])' } as object });
  expect(re.choices[0].text).toMatch(/^20[0-9]{2}-(0[1-9]|1[0-2])$/);
  const g = await client.completions.create({ model: 'demo', prompt: 'x', max_tokens: 20, seed: 2, ...{ guided_grammar: 'root ::= "(" ("a" | "b") ("," ("a" | "b"))? ")"' } as object });
  expect(g.choices[0].text).toMatch(/^\((a|b)(,(a|b))?\)$/);
});

test('unconstrained requests give their solo tokens beside constrained ones', async () => {
  const plain = (seed: number) => client.completions.create({ model: 'demo', prompt: 'Once upon a time', max_tokens: 24, seed, temperature: 1, logprobs: 1 });
  const solo: string[] = [];
  for (const seed of [1, 2, 3]) solo.push(JSON.stringify((await plain(seed)).choices[0].logprobs));
  const constrained = Array.from({ length: 6 }, (_, seed) => client.chat.completions.create({
    model: 'demo', messages, max_tokens: 200, seed,
    response_format: { type: 'json_schema', json_schema: { name: 'p', schema: person } },
  }));
  const mixed = await Promise.all([plain(1), plain(2), plain(3), ...constrained]);
  expect(mixed.slice(0, 3).map((r) => JSON.stringify((r as OpenAI.Completion).choices[0].logprobs))).toEqual(solo);
  for (const r of mixed.slice(3)) expectPerson((r as OpenAI.ChatCompletion).choices[0].message.content!);
});

test('refusals name the problem: malformed schema, unsupported keyword, bad regex, bad grammar', async () => {
  const chat = (extra: object) => post(`${t.url}/v1/chat/completions`, { messages, max_tokens: 5, ...extra });
  const schemaFormat = (schema: unknown) => ({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } });
  const cases: [object, RegExp][] = [
    [schemaFormat({ type: 'object', properties: 3 }), /properties must be an object of schemas/],
    [schemaFormat({ type: 'strin' }), /type must be one of object/],
    [schemaFormat({ type: 'object', properties: { a: { not: { type: 'string' } } } }), /unsupported JSON schema keyword "not" at properties\.a/],
    [schemaFormat({ type: 'number', maximum: 1 }), /unsupported JSON schema keyword "maximum"/],
    [schemaFormat({ $ref: '#/$defs/missing' }), /response_format: .*\$defs/],
    [{ guided_json: '{"type": ' }, /guided_json: the schema is not valid JSON/],
    [{ guided_regex: '[0-9' }, /guided_regex: the regular expression does not compile/],
    [{ guided_grammar: 'root ::= "a" |' }, /guided_grammar: EBNF parser error/],
    [{ guided_choice: ['a'], guided_regex: 'a' }, /only one of/],
    [{ response_format: { type: 'xml' } }, /response_format/],
  ];
  for (const [extra, message] of cases) {
    const r = await chat(extra);
    expect(r.status).toBe(400);
    expect(r.json.error.message).toMatch(message);
  }
  const tgi = await post(`${t.url}/generate`, { inputs: 'x', parameters: { grammar: { type: 'regex', value: '(ab' } } });
  expect(tgi.status).toBe(422);
  expect(tgi.json.error).toMatch(/grammar\.value: the regular expression does not compile/);
  const tgiJson = await post(`${t.url}/generate`, { inputs: 'x', parameters: { grammar: { type: 'json', value: { type: 'array', uniqueItems: true } } } });
  expect(tgiJson.status).toBe(422);
  expect(tgiJson.json.error).toMatch(/unsupported JSON schema keyword "uniqueItems"/);
  // The server goes on serving constrained requests after xgrammar refused a grammar.
  const ok = await client.chat.completions.create({ model: 'demo', messages, max_tokens: 10, seed: 1, ...{ guided_choice: ['on', 'off'] } as object });
  expect(['on', 'off']).toContain(ok.choices[0].message.content);
});
