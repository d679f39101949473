// Safetensors reading and writing.
//
// File layout: [u64 LE header length N][N bytes of JSON header, space-padded][data]
// The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]} relative to the
// start of the data; "__metadata__" holds string-to-string metadata.
import * as fs from 'node:fs';

export type DType = 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I8';

export const DTYPE_BYTES: Record<DType, number> = { F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I8: 1 };

/** F16 and BF16 come back as raw bits in a Uint16Array. */
export type TensorData = Float32Array | Uint16Array | BigInt64Array | Int32Array | Int8Array;

export interface TensorInfo {
  dtype: DType;
  shape: number[];
  begin: number; // byte offset in the data section
  end: number;
}

export interface Tensor {
  dtype: DType;
  shape: number[];
  data: TensorData;
}

export function numElements(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

// ---------------------------------------------------------------------------------------------
// Half-precision conversion (round to nearest, ties to even; NaN stays NaN)

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** float32 bit pattern -> IEEE binary16 bits. */
export function f32BitsToHalf(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++; // a carry into the exponent is right
  return sign | h;
}

/** float32 bit pattern -> bfloat16 bits. */
export function f32BitsToBf16(x: number): number {
  if ((x & 0x7fffffff) >>> 0 > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x >>> 0) + 0x7fff + ((x >>> 16) & 1)) >>> 16;
}

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function bf16ToFloat(b: number): number {
  scratchU32[0] = b << 16;
  return scratchF32[0];
}

export function floatToHalf(f: number): number {
  scratchF32[0] = f;
  return f32BitsToHalf(scratchU32[0]);
}

export function floatToBf16(f: number): number {
  scratchF32[0] = f;
  return f32BitsToBf16(scratchU32[0]);
}

/** Converts a float32 array to f16 or bf16 bits (into dst when given). */
export function convertF32(src: Float32Array, dtype: 'F16' | 'BF16', dst = new Uint16Array(src.length)): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const conv = dtype === 'F16' ? f32BitsToHalf : f32BitsToBf16;
  for (let i = 0; i < bits.length; i++) dst[i] = conv(bits[i]);
  return dst;
}

// ---------------------------------------------------------------------------------------------
// Reading

export class SafetensorsFile {
  readonly tensors: Map<string, TensorInfo>;

  private constructor(
    readonly path: string,
    readonly metadata: Record<string, string>,
    tensors: Map<string, TensorInfo>,
    private readonly dataStart: number,
  ) {
    this.tensors = tensors;
  }

  /** Reads and checks the header only; tensor data is read on demand. */
  static open(file: string): SafetensorsFile {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const lenBuf = new Uint8Array(8);
      if (size < 8 || fs.readSync(fd, lenBuf, 0, 8, 0) !== 8) throw new Error(`${file}: not a safetensors file (too short)`);
      const headerLen = Number(new DataView(lenBuf.buffer).getBigUint64(0, true));
      if (headerLen > size - 8 || headerLen > 100 * 1024 * 1024) throw new Error(`${file}: bad header length ${headerLen}`);
      const headerBuf = new Uint8Array(headerLen);
      fs.readSync(fd, headerBuf, 0, headerLen, 8);
      const header = JSON.parse(new TextDecoder().decode(headerBuf)) as Record<string, unknown>;
      const dataStart = 8 + headerLen;
      const tensors = new Map<string, TensorInfo>();
      let metadata: Record<string, string> = {};
      for (const [name, v] of Object.entries(header)) {
        if (name === '__metadata__') { metadata = v as Record<string, string>; continue; }
        const e = v as { dtype: string; shape: number[]; data_offsets: [number, number] };
        if (!(e.dtype in DTYPE_BYTES)) throw new Error(`${file}: tensor ${name}: unsupported dtype ${e.dtype}`);
        const dtype = e.dtype as DType;
        const [begin, end] = e.data_offsets;
        if (end - begin !== numElements(e.shape) * DTYPE_BYTES[dtype] || dataStart + end > size) {
          throw new Error(`${file}: tensor ${name}: data_offsets do not match shape or file size`);
        }
        tensors.set(name, { dtype, shape: e.shape, begin, end });
      }
      return new SafetensorsFile(file, metadata, tensors, dataStart);
    } finally {
      fs.closeSync(fd);
    }
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`${this.path}: no tensor named ${name}`);
    return t;
  }

  read(name: string): Tensor {
    const t = this.info(name);
    const bytes = new ArrayBuffer(t.end - t.begin);
    const fd = fs.openSync(this.path, 'r');
    try {
      fs.readSync(fd, new Uint8Array(bytes), 0, bytes.byteLength, this.dataStart + t.begin);
    } finally {
      fs.closeSync(fd);
    }
    return { dtype: t.dtype, shape: t.shape, data: typedView(t.dtype, bytes) };
  }

  /** Any floating dtype, widened to float32. */
  readF32(name: string): Float32Array {
    const t = this.read(name);
    if (t.dtype === 'F32') return t.data as Float32Array;
    const src = t.data as Uint16Array;
    if (t.dtype === 'F16') return Float32Array.from(src, halfToFloat);
    if (t.dtype === 'BF16') return Float32Array.from(src, bf16ToFloat);
    throw new Error(`${this.path}: tensor ${name} is ${t.dtype}, not floating point`);
  }
}

function typedView(dtype: DType, buf: ArrayBuffer): TensorData {
  switch (dtype) {
    case 'F32': return new Float32Array(buf);
    case 'F16': case 'BF16': return new Uint16Array(buf);
    case 'I64': return new BigInt64Array(buf);
    case 'I32': return new Int32Array(buf);
    case 'I8': return new Int8Array(buf);
  }
}

/** Reads every tensor of a (small) file. */
export function readSafetensors(file: string): Map<string, Tensor> {
  const f = SafetensorsFile.open(file);
  return new Map(f.names().map((n) => [n, f.read(n)]));
}

// ---------------------------------------------------------------------------------------------
// Writing

export type Chunk = ArrayBufferView;

export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
  /** The whole tensor, or a generator of chunks written in order (never all in memory). */
  data: ArrayBufferView | (() => Iterable<Chunk>);
}

export function tensorBytes(spec: Pick<TensorSpec, 'dtype' | 'shape'>): number {
  return numElements(spec.shape) * DTYPE_BYTES[spec.dtype];
}

/** Header bytes (length prefix included) as HF writes them: JSON padded with spaces to 8. */
export function encodeHeader(specs: readonly Pick<TensorSpec, 'name' | 'dtype' | 'shape'>[],
                             metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const s of specs) {
    const n = tensorBytes(s);
    header[s.name] = { dtype: s.dtype, shape: s.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/** Writes a safetensors file, streaming each tensor's chunks; returns the data size in bytes. */
export function writeSafetensors(file: string, specs: readonly TensorSpec[],
                                 metadata?: Record<string, string>): number {
  const names = new Set<string>();
  for (const s of specs) {
    if (names.has(s.name)) throw new Error(`duplicate tensor name ${s.name}`);
    names.add(s.name);
  }
  const fd = fs.openSync(file, 'w');
  let total = 0;
  try {
    writeAll(fd, encodeHeader(specs, metadata));
    for (const s of specs) {
      const want = tensorBytes(s);
      let got = 0;
      const chunks = typeof s.data === 'function' ? s.data() : [s.data];
      for (const c of chunks) {
        got += c.byteLength;
        if (got > want) break;
        writeAll(fd, new Uint8Array(c.buffer, c.byteOffset, c.byteLength));
      }
      if (got !== want) throw new Error(`tensor ${s.name}: got ${got} bytes of data, shape needs ${want}`);
      total += want;
    }
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  return total;
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.byteLength) off += fs.writeSync(fd, bytes, off, bytes.byteLength - off);
}
