// gyre generate: single prompt and JSONL batch mode (needs the built addon).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseLine } from '../../src/cli/commands/generate';
import { main } from '../../src/cli/main';
import { makeModel } from '../../src/model/make_model';
import { SafetensorsFile } from '../../src/model/safetensors';

const REF = path.resolve(__dirname, '..', 'fixtures', 'reference');
const MODEL = path.join(REF, 'mistral-gqa-swa');

let tmp: string;
let textModel: string;
let stdout: string;
let stderr: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-generate-'));
  textModel = path.join(tmp, 'tiny');
  makeModel({ shape: 'tiny', out: textModel, dtype: 'f32', seed: 5 });
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
beforeEach(() => {
  stdout = stderr = '';
  jest.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => { stdout += String(s); return true; });
  jest.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => { stderr += String(s); return true; });
});
afterEach(() => jest.restoreAllMocks());

const gyre = (...args: string[]) => main(['node', 'gyre', ...args]);

function refPrompts(): { ids: number[]; greedy: number[] }[] {
  const f = SafetensorsFile.open(path.join(REF, 'mistral-gqa-swa', 'reference.safetensors'));
  const ints = (n: string) => Array.from(f.read(n).data as BigInt64Array, Number);
  const out = [];
  for (let k = 0; f.tensors.has(`prompt_${k}.input_ids`); k++) {
    out.push({ ids: ints(`prompt_${k}.input_ids`), greedy: ints(`prompt_${k}.greedy`) });
  }
  return out;
}

function writeLines(name: string, lines: unknown[]): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return file;
}

function readResults(file: string): Record<string, unknown>[] {
  return fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

describe('batch mode', () => {
  const prompts = refPrompts();
  // Longest first, so a batch that finished out of order would show.
  const order = prompts.map((_, i) => i).reverse();
  const input = () => writeLines('greedy.jsonl', order.map((i) => ({ ids: prompts[i].ids, temperature: 0, ignore_eos: true, max_tokens: 24 })));

  test('writes greedy results in input order, with or without --max-concurrency 1', async () => {
    const file = input();
    const all = path.join(tmp, 'all.jsonl');
    const one = path.join(tmp, 'one.jsonl');
    expect(await gyre('generate', '--model', MODEL, '--prompts', file, '--out', all, '--backend', 'cpu')).toBe(0);
    expect(await gyre('generate', '--model', MODEL, '--prompts', file, '--out', one, '--max-concurrency', '1', '--backend', 'cpu')).toBe(0);
    const a = readResults(all);
    const b = readResults(one);
    expect(a).toHaveLength(prompts.length);
    a.forEach((r, j) => {
      const p = prompts[order[j]];
      expect(r).toMatchObject({ token_ids: p.greedy, text: '', finish_reason: 'length', prompt_tokens: p.ids.length });
    });
    expect(b.map((r) => r.token_ids)).toEqual(a.map((r) => r.token_ids));
  });

  test('per-line overrides and command-line defaults', async () => {
    const ids = prompts[1].ids;
    const file = writeLines('overrides.jsonl', [{ ids, max_tokens: 3 }, { ids }, { ids, max_tokens: 0 }]);
    const out = path.join(tmp, 'overrides.out.jsonl');
    expect(await gyre('generate', '--model', MODEL, '--prompts', file, '--out', out, '--max-tokens', '5',
      '--temperature', '0', '--ignore-eos', '--max-concurrency', '2')).toBe(0);
    const r = readResults(out);
    expect(r.map((x) => (x.token_ids as number[]).length)).toEqual([3, 5, 0]);
    expect(r[0].token_ids).toEqual(prompts[1].greedy.slice(0, 3));
  });

  test('text prompts, chat messages and stop strings', async () => {
    const base = { prompt: 'Once upon a time', temperature: 0, ignore_eos: true, max_tokens: 30 };
    const first = path.join(tmp, 'text.out.jsonl');
    const file = writeLines('text.jsonl', [base, { messages: [{ role: 'user', content: 'Hello' }], max_tokens: 4 }]);
    expect(await gyre('generate', '--model', textModel, '--prompts', file, '--out', first)).toBe(0);
    const [full, chat] = readResults(first);
    expect((full.text as string).length).toBeGreaterThan(6);
    expect(chat.prompt_tokens).toBeGreaterThan(4);

    const text = full.text as string;
    const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 2);
    const out = path.join(tmp, 'stop.out.jsonl');
    expect(await gyre('generate', '--model', textModel, '--prompts', writeLines('stop.jsonl', [{ ...base, stop }]), '--out', out)).toBe(0);
    const [cut] = readResults(out);
    expect(cut.text).toBe(text.slice(0, text.indexOf(stop)));
    expect(cut.finish_reason).toBe('stop');
  });

  test.each([
    ['{"ids": [1, 2]}\n{"ids": [1, 2]', /bad\.jsonl:2: not valid JSON/],
    ['{"ids": [1, 2], "temprature": 0}', /:1: unknown field "temprature"/],
    ['{"ids": [1, 2.5]}', /:1: "ids"\[1\]: 2.5 is not a token id/],
    ['{"prompt": "a", "ids": [1]}', /:1: expected exactly one of/],
    ['\n{"ids": [1], "max_tokens": -1}', /bad\.jsonl:2: "max_tokens" must be an integer >= 0/],
    ['{"ids": [1]}\n{"ids": [1]}\n{"ids": [1, 999]}', /line 3: token id 999 \(position 1\) is out of range/],
    ['{"prompt": "hello"}', /line 1: .*no tokenizer\.json/],
    ['', /no prompts/],
  ])('bad input %j', async (content, message) => {
    const file = path.join(tmp, 'bad.jsonl');
    fs.writeFileSync(file, content);
    expect(await gyre('generate', '--model', MODEL, '--prompts', file, '--out', path.join(tmp, 'bad.out.jsonl'))).toBe(1);
    expect(stderr).toMatch(message);
  });
});

describe('single prompt', () => {
  test('prints the continuation', async () => {
    expect(await gyre('generate', '--model', textModel, '--prompt', 'Hello', '--max-tokens', '8', '--temperature', '0', '--ignore-eos')).toBe(0);
    expect(stdout.length).toBeGreaterThan(1);
    expect(stdout.endsWith('\n')).toBe(true);
  });

  test('the printed text matches batch mode', async () => {
    const file = writeLines('same.jsonl', [{ prompt: 'Hello', max_tokens: 8, temperature: 0, ignore_eos: true }]);
    const out = path.join(tmp, 'same.out.jsonl');
    expect(await gyre('generate', '--model', textModel, '--prompts', file, '--out', out)).toBe(0);
    stdout = '';
    expect(await gyre('generate', '--model', textModel, '--prompt', 'Hello', '--max-tokens', '8', '--temperature', '0', '--ignore-eos')).toBe(0);
    expect(stdout).toBe(`${readResults(out)[0].text}\n`);
  });

  test('--chat without a tokenizer is a clear error', async () => {
    expect(await gyre('generate', '--model', MODEL, '--prompt', 'Hi', '--chat')).toBe(1);
    expect(stderr).toMatch(/no tokenizer\.json/);
  });
});

test('parseLine accepts a string or list stop and maps the fields', () => {
  expect(parseLine('{"ids": [3], "stop": "x", "top_p": 0.9, "top_k": 5, "min_p": 0.1, "seed": 3}'))
    .toEqual({ promptIds: [3], stop: ['x'], params: { topP: 0.9, topK: 5, minP: 0.1, seed: 3 } });
  expect(parseLine('{"messages": [{"role": "user", "content": "a"}], "stop": ["a", "b"]}').stop).toEqual(['a', 'b']);
  expect(() => parseLine('[1]')).toThrow(/JSON object/);
});

test('without --max-tokens or max_tokens, each prompt gets the server\'s default of 256 new tokens', async () => {
  const file = writeLines('default-limit.jsonl', [{ ids: [1, 450, 4996], temperature: 0, ignore_eos: true }]);
  const out = path.join(tmp, 'default-limit-out.jsonl');
  expect(await gyre('generate', '--model', textModel, '--prompts', file, '--out', out, '--backend', 'cpu')).toBe(0);
  expect(readResults(out)[0]).toMatchObject({ completion_tokens: 256, finish_reason: 'length' });
});
