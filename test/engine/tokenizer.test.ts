import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '../../src/engine/tokenizer';

const ROOT = path.resolve(__dirname, '..', '..');
const special = { bos_token: '<s>', eos_token: '</s>' };
const load = (name: string) =>
  new Tokenizer(JSON.parse(fs.readFileSync(path.join(ROOT, 'models', 'tokenizers', `${name}.tokenizer.json`), 'utf8')), special);

const tokenizers = { mistral: load('mistral'), 'llama-2': load('llama-2') };

const SAMPLES = [
  'Hello world!',
  ' one leading space',
  '   three leading spaces and trailing  ',
  'tabs\tand\t\ttabs',
  'line1\nline2\n\nline4\n',
  '中文字符 and 日本語のテキスト',
  'emoji 😀🎉👍🏽 mixed 🦙',
  'a  b   c    d',
  'Ünïcödé ﬁ ligature — dash',
];

describe.each(Object.entries(tokenizers))('%s tokenizer', (name, tok) => {
  test('special ids and vocabulary size', () => {
    expect(tok.bosTokenId).toBe(1);
    expect(tok.eosTokenId).toBe(2);
    expect(tok.eosTokenIds).toEqual([2]);
    expect(tok.vocabSize).toBe(32000);
  });

  test.each(SAMPLES)('round-trips %j', (text) => {
    const ids = tok.encode(text, { addBos: false });
    expect(ids[0]).not.toBe(1);
    expect(tok.decode(ids)).toBe(text);
    const withBos = tok.encode(text);
    expect(withBos).toEqual([1, ...ids]);
    expect(tok.decode(withBos, { skipSpecial: true })).toBe(text);
  });

  test('special tokens written in the text become their ids', () => {
    const ids = tok.encode('<s>[INST] hi [/INST] ok</s>', { addBos: false });
    expect(ids[0]).toBe(1);
    expect(ids[ids.length - 1]).toBe(2);
    expect(ids.filter((i) => i === 1)).toHaveLength(1);
  });

  test.each(SAMPLES)('incremental decode of %j, one id at a time, equals the full decode', (text) => {
    const ids = tok.encode(text, { addBos: name === 'mistral' });
    const dec = tok.incrementalDecoder();
    const pieces = ids.map((id) => dec.push(id));
    pieces.push(dec.flush());
    for (const p of pieces) expect(p).not.toContain('\uFFFD');
    expect(pieces.join('')).toBe(tok.decode(ids, { skipSpecial: true }));
    expect(dec.text).toBe(pieces.join(''));
  });
});

describe('exact ids', () => {
  test('Mistral "Hello world!"', () => {
    expect(tokenizers.mistral.encode('Hello world!')).toEqual([1, 22557, 1526, 28808]);
    expect(tokenizers.mistral.encode('Hello world!', { addBos: false })).toEqual([22557, 1526, 28808]);
  });

  test('Llama-2 "Hello world!"', () => {
    expect(tokenizers['llama-2'].encode('Hello world!')).toEqual([1, 15043, 3186, 29991]);
  });

  test('Llama-2 has no 😀 token: it falls back to 4 byte tokens', () => {
    const ids = tokenizers['llama-2'].encode('😀', { addBos: false });
    expect(ids).toEqual([29871, 243, 162, 155, 131]);
  });
});

describe('IncrementalDecoder', () => {
  const tok = tokenizers['llama-2'];

  test('holds back an incomplete UTF-8 sequence until it completes', () => {
    const dec = tok.incrementalDecoder();
    const out = [7251, 29871, 243, 162, 155, 131].map((id) => dec.push(id)); // "hi 😀"
    expect(out).toEqual(['hi', ' ', '', '', '', '😀']);
  });

  test('pushing several ids at once gives the same text', () => {
    const ids = tok.encode('emoji 😀🎉 and 中文', { addBos: false });
    const dec = tok.incrementalDecoder();
    const text = dec.push(ids.slice(0, 3)) + dec.push(ids.slice(3, 7)) + dec.push(ids.slice(7)) + dec.flush();
    expect(text).toBe('emoji 😀🎉 and 中文');
  });

  test('flush emits what is left of an unfinished sequence as U+FFFD', () => {
    const dec = tok.incrementalDecoder();
    expect(dec.push([243, 162])).toBe('');
    expect(dec.flush()).toContain('\uFFFD');
  });

  test('with the prompt as context the first token keeps its leading space', () => {
    const prompt = tok.encode('Hello');
    const generated = tok.encode('Hello world', { addBos: false }).slice(1);
    expect(tok.incrementalDecoder({ promptIds: prompt }).push(generated)).toBe(' world');
    expect(tok.incrementalDecoder().push(generated)).toBe('world');
  });

  test('skips special tokens by default, keeps them when asked', () => {
    expect(tok.incrementalDecoder().push([15043, 2])).toBe('Hello');
    expect(tok.incrementalDecoder({ skipSpecial: false }).push([15043, 2])).toBe('Hello</s>');
  });
});

describe('Tokenizer.fromModelDir', () => {
  test('reads the demo model folder', () => {
    const tok = Tokenizer.fromModelDir(path.join(ROOT, 'models', 'demo'));
    expect(tok.bosToken).toBe('<s>');
    expect(tok.eosToken).toBe('</s>');
    expect(tok.encode('Hello world!')).toEqual([1, 15043, 3186, 29991]);
  });

  test('a folder without tokenizer.json is refused', () => {
    expect(() => Tokenizer.fromModelDir(path.join(ROOT, 'test'))).toThrow(/no tokenizer.json/);
  });
});
