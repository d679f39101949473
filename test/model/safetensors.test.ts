import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  bf16ToFloat, convertF32, floatToBf16, floatToHalf, halfToFloat, readSafetensors, SafetensorsFile,
  TensorSpec, writeSafetensors,
} from '../../src/model/safetensors';

const REF = path.resolve(__dirname, '..', 'fixtures', 'reference');

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-st-')); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('round trip', () => {
  test('every dtype, whole arrays and chunk generators', () => {
    const f32 = Float32Array.from({ length: 6 }, (_, i) => i * 0.5 - 1);
    const specs: TensorSpec[] = [
      { name: 'a.f32', dtype: 'F32', shape: [2, 3], data: f32 },
      { name: 'b.f16', dtype: 'F16', shape: [6], data: convertF32(f32, 'F16') },
      { name: 'c.bf16', dtype: 'BF16', shape: [3, 2], data: convertF32(f32, 'BF16') },
      { name: 'd.i64', dtype: 'I64', shape: [3], data: BigInt64Array.from([1n, -2n, 1n << 40n]) },
      { name: 'e.i32', dtype: 'I32', shape: [1, 1, 4], data: Int32Array.from([7, -7, 0, 2 ** 31 - 1]) },
      { name: 'f.chunked', dtype: 'F32', shape: [5], data: function* () {
        yield Float32Array.from([1, 2]); yield Float32Array.from([3, 4, 5]);
      } },
      { name: 'g.scalar', dtype: 'F32', shape: [], data: Float32Array.from([42]) },
    ];
    const file = path.join(tmp, 'all.safetensors');
    writeSafetensors(file, specs, { format: 'pt' });

    const f = SafetensorsFile.open(file);
    expect(f.metadata).toEqual({ format: 'pt' });
    expect(f.names()).toEqual(specs.map((s) => s.name));
    const t = readSafetensors(file);
    expect(t.get('a.f32')).toEqual({ dtype: 'F32', shape: [2, 3], data: f32 });
    expect(f.readF32('b.f16')).toEqual(f32);
    expect(f.readF32('c.bf16')).toEqual(f32);
    expect(t.get('d.i64')!.data).toEqual(BigInt64Array.from([1n, -2n, 1n << 40n]));
    expect(t.get('e.i32')!.shape).toEqual([1, 1, 4]);
    expect([...(t.get('e.i32')!.data as Int32Array)]).toEqual([7, -7, 0, 2 ** 31 - 1]);
    expect([...f.readF32('f.chunked')]).toEqual([1, 2, 3, 4, 5]);
    expect([...f.readF32('g.scalar')]).toEqual([42]);
  });

  test('I8 tensors (8-bit weights) round-trip as Int8Array, byte for byte', () => {
    const q = Int8Array.from([-127, -1, 0, 1, 127, 5]);
    const file = path.join(tmp, 'i8.safetensors');
    writeSafetensors(file, [
      { name: 'w', dtype: 'I8', shape: [2, 3], data: q },
      { name: 'w_scale', dtype: 'F32', shape: [2], data: Float32Array.from([0.5, 0.25]) },
      { name: 'odd', dtype: 'I8', shape: [3], data: function* () { yield Int8Array.from([1]); yield Int8Array.from([-2, 3]); } },
    ]);
    const f = SafetensorsFile.open(file);
    expect(f.info('w')).toMatchObject({ dtype: 'I8', shape: [2, 3], begin: 0, end: 6 });
    expect(f.info('w_scale')).toMatchObject({ begin: 6, end: 14 });   // no padding between tensors
    const w = f.read('w');
    expect(w.data).toBeInstanceOf(Int8Array);
    expect([...w.data as Int8Array]).toEqual([...q]);
    expect([...f.read('odd').data as Int8Array]).toEqual([1, -2, 3]);
    expect(() => f.readF32('w')).toThrow(/is I8, not floating point/);
    expect(() => writeSafetensors(file, [{ name: 'x', dtype: 'I8', shape: [4], data: new Int8Array(3) }])).toThrow(/got 3 bytes of data, shape needs 4/);
  });

  test('the header is space-padded to a multiple of 8 bytes', () => {
    const file = path.join(tmp, 'pad.safetensors');
    writeSafetensors(file, [{ name: 'x', dtype: 'F32', shape: [1], data: Float32Array.from([1]) }]);
    const bytes = fs.readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    expect(bytes.length).toBe(8 + n + 4);
    expect(JSON.parse(bytes.subarray(8, 8 + n).toString())).toEqual({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } });
  });

  test('data that does not match the shape is refused, and no file is left', () => {
    const file = path.join(tmp, 'bad.safetensors');
    expect(() => writeSafetensors(file, [{ name: 'x', dtype: 'F32', shape: [3], data: new Float32Array(2) }]))
      .toThrow(/x: got 8 bytes/);
    expect(fs.existsSync(file)).toBe(false);
    expect(() => writeSafetensors(file, [
      { name: 'x', dtype: 'F32', shape: [1], data: new Float32Array(1) },
      { name: 'x', dtype: 'F32', shape: [1], data: new Float32Array(1) },
    ])).toThrow(/duplicate/);
  });

  test('a truncated file is refused', () => {
    const file = path.join(tmp, 'trunc.safetensors');
    writeSafetensors(file, [{ name: 'x', dtype: 'F32', shape: [4], data: new Float32Array(4) }]);
    fs.truncateSync(file, fs.statSync(file).size - 1);
    expect(() => SafetensorsFile.open(file)).toThrow(/truncated: tensor 'x' ends at byte 16 of the data section but the file holds only 15/);
    fs.writeFileSync(file, new Uint8Array([1, 2, 3]));
    expect(() => SafetensorsFile.open(file)).toThrow(/too short/);
  });
});

describe('reference fixtures', () => {
  test('llama-mha reference.safetensors', () => {
    const f = SafetensorsFile.open(path.join(REF, 'llama-mha', 'reference.safetensors'));
    const lens = [1, 7, 33, 100];
    lens.forEach((len, k) => {
      const ids = f.read(`prompt_${k}.input_ids`);
      expect(ids.dtype).toBe('I64');
      expect(ids.shape).toEqual([len]);
      for (const id of ids.data as BigInt64Array) expect(id >= 3n && id < 320n).toBe(true);
      expect(f.info(`prompt_${k}.logits`)).toMatchObject({ dtype: 'F32', shape: [len, 320] });
      expect(f.info(`prompt_${k}.greedy`)).toMatchObject({ dtype: 'I64', shape: [24] });
    });
    expect(f.metadata.prompt_lengths).toBe('[1, 7, 33, 100]');
    const logits = f.readF32('prompt_1.logits');
    expect(logits.every(Number.isFinite)).toBe(true);
    expect(Math.max(...logits.map(Math.abs))).toBeLessThan(1); // README: max |logit| 0.67
  });

  test('llama-mha model.safetensors has the HF tensors of its config', () => {
    const f = SafetensorsFile.open(path.join(REF, 'llama-mha', 'model.safetensors'));
    expect(f.info('model.embed_tokens.weight')).toMatchObject({ dtype: 'F32', shape: [320, 64] });
    expect(f.info('model.layers.1.mlp.down_proj.weight').shape).toEqual([64, 176]);
    expect(f.info('lm_head.weight').shape).toEqual([320, 64]);
    expect(f.names()).toHaveLength(1 + 2 * 9 + 2);
    const norm = f.readF32('model.norm.weight');
    expect(Math.abs(norm.reduce((a, b) => a + b, 0) / norm.length - 1)).toBeLessThan(0.1);
  });
});

describe('half precision', () => {
  test('every finite f16 value survives f16 -> f32 -> f16', () => {
    for (let h = 0; h < 0x10000; h++) {
      const f = halfToFloat(h);
      if (Number.isNaN(f)) expect(Number.isNaN(halfToFloat(floatToHalf(f)))).toBe(true);
      else if (floatToHalf(f) !== h) throw new Error(`0x${h.toString(16)} -> ${f} -> 0x${floatToHalf(f).toString(16)}`);
    }
  });

  test('f16 rounds to nearest, ties to even', () => {
    expect(floatToHalf(1 + 2 ** -11)).toBe(0x3c00); // tie, even is down
    expect(floatToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie, even is up
    expect(floatToHalf(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // above the tie
    expect(floatToHalf(65504)).toBe(0x7bff);
    expect(floatToHalf(65519)).toBe(0x7bff);
    expect(floatToHalf(65520)).toBe(0x7c00); // rounds to infinity
    expect(floatToHalf(-1e9)).toBe(0xfc00);
    expect(floatToHalf(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(floatToHalf(2 ** -25)).toBe(0x0000); // tie to even (zero)
    expect(floatToHalf(3 * 2 ** -26)).toBe(0x0001);
    expect(floatToHalf(3 * 2 ** -25)).toBe(0x0002); // 1.5 ulp ties to 2
    expect(floatToHalf(2 ** -14 - 2 ** -25)).toBe(0x0400); // subnormal rounds up to the smallest normal
    expect(floatToHalf(-0)).toBe(0x8000);
    expect(Number.isNaN(halfToFloat(floatToHalf(NaN)))).toBe(true);
  });

  test('bf16 rounds to nearest, ties to even', () => {
    expect(floatToBf16(1)).toBe(0x3f80);
    expect(floatToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie, even is down
    expect(floatToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie, even is up
    expect(floatToBf16(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    expect(floatToBf16(-2.5)).toBe(0xc020);
    expect(floatToBf16(3.4028234663852886e38)).toBe(0x7f80); // max float32 rounds to infinity
    expect(Number.isNaN(bf16ToFloat(floatToBf16(NaN)))).toBe(true);
    for (const b of [0x0001, 0x3f80, 0x4049, 0xc2f7, 0x7f7f, 0x8000]) expect(floatToBf16(bf16ToFloat(b))).toBe(b);
  });

  test('convertF32 matches the scalar conversions', () => {
    const src = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 10 ** ((i % 13) - 6));
    const f16 = convertF32(src, 'F16');
    const bf16 = convertF32(src, 'BF16');
    src.forEach((v, i) => {
      expect(f16[i]).toBe(floatToHalf(v));
      expect(bf16[i]).toBe(floatToBf16(v));
    });
  });
});
