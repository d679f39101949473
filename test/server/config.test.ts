// gyre serve's settings: flags over GYRE_* over the TGI/LMI names over defaults; malformed values
// are refused by name. And the body reader's nesting check.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { jsonDepth } from '../../src/server/body';
import { engineOptions as cliEngineOptions } from '../../src/cli/commands/logits';
import { gpuMemoryOptions, parseSize, resolveConfig } from '../../src/server/config';
import { engineOptions } from '../../src/server/model_host';

const noModelRoot = { GYRE_SAGEMAKER_ROOT: '/nonexistent' };

test('defaults need no settings', () => {
  expect(resolveConfig({}, noModelRoot)).toEqual({
    model: undefined, modelFrom: 'none', servedModelName: undefined, host: '0.0.0.0', port: 8080, backend: 'auto',
    maxModelLen: undefined, maxInputTokens: undefined, maxBatchTokens: undefined, maxSeqs: 256, maxWaiting: 1024,
    threads: undefined, drainTimeoutMs: 25_000, emfIntervalMs: 10_000, gpuMemoryFraction: undefined, gpuMemoryBudget: undefined,
    quantization: 'none', quantizeLmHead: false,
    maxResponseBufferBytes: 1024 * 1024, bodyTimeoutMs: 30_000, maxBodyBytesInFlight: 64 * 1024 * 1024,
  });
  expect(resolveConfig({ bodyTimeout: 5 }, { ...noModelRoot, GYRE_MAX_RESPONSE_BUFFER: '2048', GYRE_MAX_BODY_BYTES_IN_FLIGHT: '1000' }))
    .toMatchObject({ maxResponseBufferBytes: 2048, bodyTimeoutMs: 5000, maxBodyBytesInFlight: 1000 });
  expect(() => resolveConfig({}, { ...noModelRoot, GYRE_BODY_TIMEOUT: '0' })).toThrow('GYRE_BODY_TIMEOUT=0: expected an integer >= 1');
});

test('GPU memory settings are checked', () => {
  expect(resolveConfig({}, { ...noModelRoot, GYRE_GPU_MEMORY_FRACTION: '0.8', GYRE_GPU_MEMORY_BUDGET: '22G' }))
    .toMatchObject({ gpuMemoryFraction: 0.8, gpuMemoryBudget: '22G' });
  expect(resolveConfig({ gpuMemoryFraction: 0.5, gpuMemoryBudget: '20000M' }, { ...noModelRoot, GYRE_GPU_MEMORY_FRACTION: '0.8' }))
    .toMatchObject({ gpuMemoryFraction: 0.5, gpuMemoryBudget: '20000M' });
  expect(() => resolveConfig({}, { ...noModelRoot, GYRE_GPU_MEMORY_FRACTION: '1.5' })).toThrow(/GYRE_GPU_MEMORY_FRACTION=1.5: expected a number in \(0, 1\]/);
  expect(() => resolveConfig({}, { ...noModelRoot, GYRE_GPU_MEMORY_BUDGET: 'lots' })).toThrow(/GYRE_GPU_MEMORY_BUDGET=lots: expected a size/);
});

test('GPU memory settings reach the engine as options (the budget in bytes), not through the environment', () => {
  expect(parseSize('22G')).toBe(22 * 2 ** 30);
  expect(parseSize('20.5GiB')).toBe(20.5 * 2 ** 30);
  expect(parseSize('22000M')).toBe(22000 * 2 ** 20);
  expect(parseSize('123456')).toBe(123456);
  expect(() => parseSize('lots')).toThrow(/lots: expected a size/);
  const cfg = resolveConfig({ gpuMemoryFraction: 0.5, gpuMemoryBudget: '20G' }, noModelRoot);
  const before = { ...process.env };
  expect(engineOptions(cfg)).toMatchObject({ gpuMemoryFraction: 0.5, gpuMemoryBudget: 20 * 2 ** 30 });
  expect(process.env).toEqual(before);
  expect(engineOptions(resolveConfig({}, noModelRoot))).not.toHaveProperty('gpuMemoryBudget');
  expect(gpuMemoryOptions({})).toEqual({});
  // generate / logits / eval-ppl read the same variables
  expect(cliEngineOptions({}, { GYRE_GPU_MEMORY_FRACTION: '0.7', GYRE_GPU_MEMORY_BUDGET: '512M' }))
    .toMatchObject({ gpuMemoryFraction: 0.7, gpuMemoryBudget: 512 * 2 ** 20 });
  expect(() => cliEngineOptions({}, { GYRE_GPU_MEMORY_FRACTION: '2' })).toThrow(/GYRE_GPU_MEMORY_FRACTION=2/);
});

test('8-bit weights: GYRE_QUANTIZATION / --quantization int8, GYRE_QUANTIZE_LM_HEAD; junk is refused by name', () => {
  expect(resolveConfig({}, { ...noModelRoot, GYRE_QUANTIZATION: 'none' })).toMatchObject({ quantization: 'none', quantizeLmHead: false });
  expect(resolveConfig({}, { ...noModelRoot, GYRE_QUANTIZATION: '' })).toMatchObject({ quantization: 'none' });
  expect(resolveConfig({}, { ...noModelRoot, GYRE_QUANTIZATION: 'int8' })).toMatchObject({ quantization: 'int8', quantizeLmHead: false });
  expect(resolveConfig({}, { ...noModelRoot, GYRE_QUANTIZATION: 'int8', GYRE_QUANTIZE_LM_HEAD: 'true' }))
    .toMatchObject({ quantization: 'int8', quantizeLmHead: true });
  expect(resolveConfig({}, { ...noModelRoot, GYRE_QUANTIZATION: 'int8', GYRE_QUANTIZE_LM_HEAD: '0' })).toMatchObject({ quantizeLmHead: false });
  // The flag wins over the environment, both ways.
  expect(resolveConfig({ quantization: 'int8', quantizeLmHead: true }, { ...noModelRoot, GYRE_QUANTIZATION: 'none' }))
    .toMatchObject({ quantization: 'int8', quantizeLmHead: true });
  expect(resolveConfig({ quantization: 'none' }, { ...noModelRoot, GYRE_QUANTIZATION: 'int8' })).toMatchObject({ quantization: 'none' });
  expect(() => resolveConfig({}, { ...noModelRoot, GYRE_QUANTIZATION: 'int4' })).toThrow('GYRE_QUANTIZATION=int4: expected none or int8');
  expect(() => resolveConfig({}, { ...noModelRoot, GYRE_QUANTIZATION: 'INT8' })).toThrow(/GYRE_QUANTIZATION=INT8: expected none or int8/);
  expect(() => resolveConfig({ quantization: 'fp8' }, noModelRoot)).toThrow('--quantization fp8: expected none or int8');
  expect(() => resolveConfig({}, { ...noModelRoot, GYRE_QUANTIZATION: 'int8', GYRE_QUANTIZE_LM_HEAD: 'maybe' }))
    .toThrow('GYRE_QUANTIZE_LM_HEAD=maybe: expected true or false');
  // An LM head setting without int8 would be silently ignored: refused instead.
  expect(() => resolveConfig({}, { ...noModelRoot, GYRE_QUANTIZE_LM_HEAD: '1' })).toThrow(/needs GYRE_QUANTIZATION=int8/);
});

test('TGI / LMI / SageMaker names are honoured; GYRE_* wins over them; flags win over all', () => {
  const env = {
    ...noModelRoot, HF_MODEL_ID: '/models/a', SAGEMAKER_BIND_TO_PORT: '9000', MAX_TOTAL_TOKENS: '4096', MAX_INPUT_LENGTH: '1000',
    MAX_BATCH_PREFILL_TOKENS: '8192', GYRE_BACKEND: 'cpu', GYRE_MAX_SEQS: '8', GYRE_MAX_WAITING: '0', GYRE_THREADS: '2',
  };
  expect(resolveConfig({}, env)).toMatchObject({
    model: '/models/a', modelFrom: 'HF_MODEL_ID', port: 9000, maxModelLen: 4096, maxInputTokens: 1000, maxBatchTokens: 8192,
    backend: 'cpu', maxSeqs: 8, maxWaiting: 0, threads: 2,
  });
  const gyre = { ...env, GYRE_MODEL: '/models/b', GYRE_MAX_MODEL_LEN: '2048', GYRE_MAX_INPUT_TOKENS: '512', MAX_INPUT_TOKENS: '700' };
  expect(resolveConfig({}, gyre)).toMatchObject({ model: '/models/b', modelFrom: 'GYRE_MODEL', maxModelLen: 2048, maxInputTokens: 512 });
  expect(resolveConfig({ model: '/models/c', port: 1234, maxModelLen: 64, backend: 'cuda' }, gyre))
    .toMatchObject({ model: '/models/c', modelFrom: '--model', port: 1234, maxModelLen: 64, backend: 'cuda' });
});

test('/opt/ml/model is the default model when present (GYRE_SAGEMAKER_ROOT moves /opt/ml)', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-root-'));
  fs.mkdirSync(path.join(root, 'model'));
  expect(resolveConfig({}, { GYRE_SAGEMAKER_ROOT: root })).toMatchObject({ model: path.join(root, 'model'), modelFrom: `${root}/model` });
  fs.rmSync(root, { recursive: true });
});

test('malformed values are refused by name', () => {
  expect(() => resolveConfig({}, { ...noModelRoot, GYRE_MAX_SEQS: 'lots' })).toThrow('GYRE_MAX_SEQS=lots: expected an integer >= 1');
  expect(() => resolveConfig({}, { ...noModelRoot, SAGEMAKER_BIND_TO_PORT: '80.5' })).toThrow(/SAGEMAKER_BIND_TO_PORT=80.5/);
  expect(() => resolveConfig({}, { ...noModelRoot, GYRE_BACKEND: 'tpu' })).toThrow(/backend "tpu": expected auto, cpu or cuda/);
  expect(() => resolveConfig({}, { ...noModelRoot, MAX_TOTAL_TOKENS: '-3' })).toThrow(/MAX_TOTAL_TOKENS=-3/);
});

test('JSON nesting depth is measured outside strings', () => {
  expect(jsonDepth('{"a": [1, {"b": 2}]}')).toBe(3);
  expect(jsonDepth('{"a": "[[[[{{{{\\"[[["}')).toBe(1);
  expect(jsonDepth('['.repeat(1e6))).toBe(65);   // stops counting past the limit
});
