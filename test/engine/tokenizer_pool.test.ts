// Long prompts are tokenized on worker threads: the same ids as on the main thread, while the
// event loop keeps turning.
import * as path from 'node:path';
import { Tokenizer } from '../../src/engine/tokenizer';
import { TokenizerPool } from '../../src/engine/tokenizer_pool';

const DEMO = path.join(__dirname, '..', '..', 'models', 'demo');

describe('TokenizerPool', () => {
  const tokenizer = Tokenizer.fromModelDir(DEMO);
  let pool: TokenizerPool;
  beforeAll(() => { pool = new TokenizerPool(tokenizer, DEMO, 2); });
  afterAll(() => pool.close());

  test('gives the ids the tokenizer gives, for short (inline) and long (worker) texts', async () => {
    const short = 'Hello world! 😀 naïve — 東京';
    const long = `${short} The quick brown fox jumps over the lazy dog.\n`.repeat(40);
    expect(long.length).toBeGreaterThan(512);
    expect(await pool.encode(short, { addBos: true })).toEqual(tokenizer.encode(short, { addBos: true }));
    expect(await pool.encode(long, { addBos: false })).toEqual(tokenizer.encode(long, { addBos: false }));
    const many = await Promise.all([1, 2, 3, 4].map((n) => pool.encode(long.repeat(n))));
    many.forEach((ids, i) => expect(ids).toEqual(tokenizer.encode(long.repeat(i + 1))));
  });

  test('the event loop keeps turning while a long text is tokenized', async () => {
    const text = 'The quick brown fox jumps over the lazy dog. '.repeat(2000);  // 90,000 characters
    const t0 = Date.now();
    tokenizer.encode(text);
    const inlineMs = Date.now() - t0;  // what the main thread would have been blocked for
    let last = Date.now();
    let maxGap = 0;
    const timer = setInterval(() => {
      const now = Date.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
    }, 2);
    const ids = await pool.encode(text);
    clearInterval(timer);
    expect(ids.length).toBeGreaterThan(20000);
    // Off the main thread the loop never stalls for anything like the encode itself.
    expect(maxGap).toBeLessThan(Math.max(40, inlineMs / 3));
  });

  test('a closed pool refuses work', async () => {
    const p = new TokenizerPool(tokenizer, DEMO, 1);
    await p.close();
    await expect(p.encode('x'.repeat(1000))).rejects.toThrow('closed');
  });
});
