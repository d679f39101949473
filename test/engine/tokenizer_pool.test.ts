// Prompts are rendered and tokenized on worker threads: the same ids as on the main thread, while
// the event loop keeps turning; a hostile chat template or tokenizer regex (a model folder is
// untrusted input) costs one worker, bounded in time and memory, and the pool carries on.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ChatTemplate, ChatTemplateError, encodeChat } from '../../src/engine/chat_template';
import { Tokenizer } from '../../src/engine/tokenizer';
import { TextLimitError, TokenizerPool, textLimitsFromEnv } from '../../src/engine/tokenizer_pool';

const DEMO = path.join(__dirname, '..', '..', 'models', 'demo');

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-pool-')); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The demo's tokenizer files, with edits: a folder the pool can load. */
function folder(name: string, edit: { template?: string; tokenizer?: (t: Record<string, unknown>) => void } = {}): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) {
    fs.copyFileSync(path.join(DEMO, f), path.join(dir, f));
  }
  if (edit.template !== undefined) {
    const file = path.join(dir, 'tokenizer_config.json');
    fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), chat_template: edit.template }));
  }
  if (edit.tokenizer) {
    const file = path.join(dir, 'tokenizer.json');
    const t = JSON.parse(fs.readFileSync(file, 'utf8'));
    edit.tokenizer(t);
    fs.writeFileSync(file, JSON.stringify(t));
  }
  return dir;
}

/** The longest gap between 5 ms ticks while p runs: how long the event loop was held. */
async function maxLoopGap<T>(p: Promise<T>): Promise<{ gap: number; result: PromiseSettledResult<T> }> {
  let last = performance.now();
  let gap = 0;
  const timer = setInterval(() => { const now = performance.now(); gap = Math.max(gap, now - last); last = now; }, 5);
  const [result] = await Promise.allSettled([p]);
  clearInterval(timer);
  return { gap, result };
}

describe('TokenizerPool on the demo model', () => {
  const tokenizer = Tokenizer.fromModelDir(DEMO);
  let pool: TokenizerPool;
  beforeAll(() => { pool = new TokenizerPool(DEMO, { size: 2 }); });
  afterAll(() => pool.close());

  test('gives the ids the tokenizer gives, short and long, and the chat ids of the main thread', async () => {
    const short = 'Hello world! 😀 naïve — 東京';
    const long = `${short} The quick brown fox jumps over the lazy dog.\n`.repeat(40);
    expect(await pool.encode(short, { addBos: true })).toEqual(tokenizer.encode(short, { addBos: true }));
    expect(await pool.encode(long, { addBos: false })).toEqual(tokenizer.encode(long, { addBos: false }));
    const many = await Promise.all([1, 2, 3, 4].map((n) => pool.encode(long.repeat(n))));
    many.forEach((ids, i) => expect(ids).toEqual(tokenizer.encode(long.repeat(i + 1))));
    const messages = [{ role: 'system', content: 'Be terse.' }, { role: 'user', content: 'What is 2+2?' }];
    expect(await pool.encodeChat(messages)).toEqual(encodeChat(tokenizer, ChatTemplate.fromModelDir(DEMO), messages));
  });

  test('a template refusal comes back as ChatTemplateError', async () => {
    await expect(pool.encodeChat([{ role: 'assistant', content: 'x' }, { role: 'assistant', content: 'y' }]))
      .rejects.toBeInstanceOf(ChatTemplateError);
  });

  test('the event loop keeps turning while a long text is tokenized', async () => {
    const text = 'The quick brown fox jumps over the lazy dog. '.repeat(2000);  // 90,000 characters
    const { gap, result } = await maxLoopGap(pool.encode(text));
    expect(result.status).toBe('fulfilled');
    expect(gap).toBeLessThan(100);
  });

  test('a closed pool refuses work', async () => {
    const p = new TokenizerPool(DEMO, { size: 1 });
    await p.close();
    await expect(p.encode('x')).rejects.toThrow('closed');
  });
});

describe('TokenizerPool under a hostile model folder', () => {
  const limits = { timeoutMs: 1500, memoryMb: 128 };

  test.each([
    ['a loop of a billion steps', '{% for i in range(1000000000) %}x{% endfor %}'],
    ['nested loops', '{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}'],
  ])('a chat template with %s fails with a limit; the loop stays free; the pool recovers', async (_, template) => {
    const dir = folder(`template-${template.length}`, { template });
    const pool = new TokenizerPool(dir, { ...limits, size: 1 });
    try {
      const { gap, result } = await maxLoopGap(pool.encodeChat([{ role: 'user', content: 'hi' }]));
      expect(result.status).toBe('rejected');
      const e = (result as PromiseRejectedResult).reason;
      expect(e).toBeInstanceOf(TextLimitError);
      // range(1e9) writing 'x' each step may meet the heap limit first; nested loops meet the clock.
      expect(e.message).toMatch(/did not finish within 1500 ms \(GYRE_TEXT_TIMEOUT_MS\)|heap \(GYRE_TEXT_MEMORY_MB\)/);
      expect(gap).toBeLessThan(500);
      // The replacement worker serves plain text.
      expect(await pool.encode('hello', { addBos: false })).toEqual(Tokenizer.fromModelDir(DEMO).encode('hello', { addBos: false }));
    } finally {
      await pool.close();
    }
  });

  test('a chat template that builds a huge list fails with the memory limit, and the server process survives', async () => {
    const template = '{% set ns = namespace(l=[1, 2, 3, 4, 5, 6, 7, 8]) %}' +
      '{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}';
    const dir = folder('template-memory', { template });
    const pool = new TokenizerPool(dir, { timeoutMs: 20_000, memoryMb: 64, size: 1 });
    try {
      const e = await pool.encodeChat([{ role: 'user', content: 'hi' }]).then(() => undefined, (x: Error) => x);
      expect(e).toBeInstanceOf(TextLimitError);
      expect(e!.message).toMatch(/heap \(GYRE_TEXT_MEMORY_MB\)|stopped its worker/);
    } finally {
      await pool.close();
    }
  });

  test.each([
    ['a pre-tokenizer Split', (t: Record<string, unknown>) => {
      t.pre_tokenizer = { type: 'Split', pattern: { Regex: '(a+)+$' }, behavior: 'Isolated', invert: false };
    }],
    ['a normalizer Replace', (t: Record<string, unknown>) => {
      t.normalizer = { type: 'Sequence', normalizers: [{ type: 'Replace', pattern: { Regex: '(a|aa)+$' }, content: 'x' }] };
    }],
  ])('a tokenizer regex that backtracks (%s) fails with the time limit on "a"*40+"b"', async (name, edit) => {
    const dir = folder(`regex-${name.length}`, { tokenizer: edit });
    const pool = new TokenizerPool(dir, { ...limits, size: 1 });
    try {
      expect((await pool.encode('hello')).length).toBeGreaterThan(0);
      const { gap, result } = await maxLoopGap(pool.encode(`${'a'.repeat(40)}b`));
      expect(result.status).toBe('rejected');
      expect((result as PromiseRejectedResult).reason).toBeInstanceOf(TextLimitError);
      expect(gap).toBeLessThan(500);
    } finally {
      await pool.close();
    }
  });
});

test('the limits come from GYRE_TEXT_TIMEOUT_MS and GYRE_TEXT_MEMORY_MB; malformed values are named', () => {
  expect(textLimitsFromEnv({})).toEqual({ timeoutMs: 10_000, memoryMb: 512 });
  expect(textLimitsFromEnv({ GYRE_TEXT_TIMEOUT_MS: '2500', GYRE_TEXT_MEMORY_MB: '256' })).toEqual({ timeoutMs: 2500, memoryMb: 256 });
  expect(() => textLimitsFromEnv({ GYRE_TEXT_TIMEOUT_MS: 'soon' })).toThrow('GYRE_TEXT_TIMEOUT_MS=soon');
});
