// gyre logits against the reference fixtures (needs the built addon).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../src/cli/main';
import { SafetensorsFile } from '../../src/model/safetensors';

const REF = path.resolve(__dirname, '..', 'fixtures', 'reference');
const MODELS = fs.readdirSync(REF).filter((d) => fs.existsSync(path.join(REF, d, 'reference.safetensors'))).sort();

let tmp: string;
let stderr: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-logits-')); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
beforeEach(() => {
  stderr = '';
  jest.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => { stderr += String(s); return true; });
});
afterEach(() => jest.restoreAllMocks());

const gyre = (...args: string[]) => main(['node', 'gyre', ...args]);

const cases = MODELS.flatMap((model) => {
  const f = SafetensorsFile.open(path.join(REF, model, 'reference.safetensors'));
  return f.names().filter((n) => n.endsWith('.input_ids')).map((n) => [model, n.split('.')[0]] as const);
});

test.each(cases)('%s %s matches the reference logits', async (model, prompt) => {
  const ref = SafetensorsFile.open(path.join(REF, model, 'reference.safetensors'));
  const ids = Array.from(ref.read(`${prompt}.input_ids`).data as BigInt64Array, Number);
  const want = ref.readF32(`${prompt}.logits`);
  const out = path.join(tmp, `${model}-${prompt}.safetensors`);
  expect(await gyre('logits', '--model', path.join(REF, model), '--ids', ids.join(','), '--out', out, '--backend', 'cpu')).toBe(0);

  const f = SafetensorsFile.open(out);
  expect(f.names()).toEqual(['logits']);
  expect(f.info('logits').dtype).toBe('F32');
  expect(f.info('logits').shape).toEqual([ids.length, 320]);
  const got = f.readF32('logits');
  let maxDiff = 0;
  for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
  expect(maxDiff).toBeLessThanOrEqual(1e-4);
});

describe('bad input', () => {
  const model = path.join(REF, 'llama-mha');

  test('an id out of the vocabulary names the id and the position', async () => {
    const out = path.join(tmp, 'bad.safetensors');
    expect(await gyre('logits', '--model', model, '--ids', '1,2,320', '--out', out)).toBe(1);
    expect(stderr).toMatch(/position 2: token id 320 is out of range for a vocabulary of 320/);
    expect(fs.existsSync(out)).toBe(false);
  });

  test('a non-integer id is refused before loading', async () => {
    expect(await gyre('logits', '--model', model, '--ids', '1,x,3', '--out', path.join(tmp, 'x.safetensors'))).toBe(2);
    expect(stderr).toMatch(/token ids/);
  });

  test('a missing model folder says so', async () => {
    expect(await gyre('logits', '--model', path.join(tmp, 'nope'), '--ids', '1', '--out', path.join(tmp, 'y.safetensors'))).toBe(1);
    expect(stderr).toMatch(/nope/);
  });
});
