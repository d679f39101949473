// Safetensors reading and writing.
//
// File layout: [u64 LE header length N][N bytes of JSON header, space-padded][data]
// The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]} relative to the
// start of the data; "__metadata__" holds string-to-string metadata.
import * as fs from 'node:fs';
import { openModelFile, parseModelJson } from './model_file';

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

export const MAX_HEADER_BYTES = 100 * 2 ** 20;
export const MAX_TENSORS_PER_FILE = 65536;
export const MAX_DIMS = 8;

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** Elements x bytesPer, or undefined when a dimension is not a count or the product passes 2^53. */
export function checkedBytes(shape: readonly unknown[], bytesPer: number): number | undefined {
  let n = bytesPer;
  for (const d of shape) {
    if (!isCount(d)) return undefined;
    n *= d;
    if (!Number.isSafeInteger(n)) return undefined;
  }
  return n;
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

  /** Reads and checks the header only; tensor data is read on demand. Only a regular file is
   *  read (opened non-blocking: a FIFO must not hang us). */
  static open(file: string): SafetensorsFile {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new Error(`${file}: not a regular file`);
      return SafetensorsFile.read(fd, st.size, file);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** A file of a model folder: dir/name under the rules of model_file.ts. */
  static openInFolder(dir: string, name: string): SafetensorsFile {
    const { fd, size, file } = openModelFile(dir, name);
    try {
      return SafetensorsFile.read(fd, size, file);
    } finally {
      fs.closeSync(fd);
    }
  }

  // The checks of native/src/model/safetensors.cc: every number a non-negative integer, shape
  // products and byte sizes computed without overflow, offsets inside the file; messages never
  // quote the file's bytes.
  private static read(fd: number, size: number, file: string): SafetensorsFile {
    const lenBuf = new Uint8Array(8);
    if (size < 8 || fs.readSync(fd, lenBuf, 0, 8, 0) !== 8) throw new Error(`${file}: not a safetensors file (too short)`);
    const headerLen = new DataView(lenBuf.buffer).getBigUint64(0, true);
    if (headerLen > BigInt(size - 8) || headerLen > BigInt(MAX_HEADER_BYTES)) {
      throw new Error(`${file}: truncated or not safetensors: the header length in its first 8 bytes exceeds the file's ${size} bytes (or the ${MAX_HEADER_BYTES}-byte header limit)`);
    }
    const headerBuf = new Uint8Array(Number(headerLen));
    fs.readSync(fd, headerBuf, 0, headerBuf.length, 8);
    const header = parseModelJson(new TextDecoder().decode(headerBuf), `${file} header`);
    if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new Error(`${file}: header is not a JSON object`);
    const entries = Object.entries(header);
    if (entries.length > MAX_TENSORS_PER_FILE + 1) throw new Error(`${file}: header lists ${entries.length} tensors (at most ${MAX_TENSORS_PER_FILE})`);
    const dataStart = 8 + headerBuf.length;
    const dataSize = size - dataStart;
    const tensors = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    for (const [name, v] of entries) {
      if (name === '__metadata__') { metadata = (typeof v === 'object' && v !== null ? v : {}) as Record<string, string>; continue; }
      const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
      if (!e || typeof e.dtype !== 'string' || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets) || e.data_offsets.length !== 2) {
        throw new Error(`${file}: tensor '${name}': header entry needs dtype, shape and data_offsets`);
      }
      if (!(e.dtype in DTYPE_BYTES)) throw new Error(`${file}: tensor '${name}': unsupported dtype ${e.dtype.slice(0, 16)}`);
      const dtype = e.dtype as DType;
      if (e.shape.length > MAX_DIMS) throw new Error(`${file}: tensor '${name}': shape has ${e.shape.length} dimensions (at most ${MAX_DIMS})`);
      const bytes = checkedBytes(e.shape, DTYPE_BYTES[dtype]);
      if (bytes === undefined) throw new Error(`${file}: tensor '${name}': shape must hold non-negative integers whose byte size is at most 2^53`);
      const [begin, end] = e.data_offsets as unknown[];
      if (!isCount(begin) || !isCount(end)) throw new Error(`${file}: tensor '${name}': data_offsets must be two non-negative integers`);
      if (end < begin) throw new Error(`${file}: tensor '${name}': data_offsets end before they begin`);
      if (end > dataSize) throw new Error(`${file}: truncated: tensor '${name}' ends at byte ${end} of the data section but the file holds only ${dataSize}`);
      if (end - begin !== bytes) throw new Error(`${file}: tensor '${name}': ${end - begin} bytes do not match shape [${e.shape.join(', ')}] of ${dtype}`);
      tensors.set(name, { dtype, shape: e.shape as number[], begin, end });
    }
    return new SafetensorsFile(file, metadata, tensors, dataStart);
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

  /** Counts NaN and ±Inf elements of a float tensor, reading chunkBytes at a time (never the
   *  whole tensor); first: the index of the first one. Integer tensors have none. */
  countNonFinite(name: string, chunkBytes = 16 * 2 ** 20): { count: number; first: number } {
    const t = this.info(name);
    const width = DTYPE_BYTES[t.dtype];
    // The exponent bits that, all set, mean NaN or Inf.
    const mask = t.dtype === 'F32' ? 0x7f800000 : t.dtype === 'F16' ? 0x7c00 : t.dtype === 'BF16' ? 0x7f80 : 0;
    const out = { count: 0, first: -1 };
    if (!mask) return out;
    const step = Math.max(width, chunkBytes - (chunkBytes % 4));
    const buf = new Uint8Array(step);
    const fd = fs.openSync(this.path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      for (let off = 0; off < t.end - t.begin; off += step) {
        const n = Math.min(step, t.end - t.begin - off);
        let got = 0;
        while (got < n) {
          const r = fs.readSync(fd, buf, got, n - got, this.dataStart + t.begin + off + got);
          if (r === 0) throw new Error(`${this.path}: tensor '${name}' is cut short`);
          got += r;
        }
        const words = width === 4 ? new Uint32Array(buf.buffer, 0, n / 4) : new Uint16Array(buf.buffer, 0, n / 2);
        for (let i = 0; i < words.length; i++) {
          if ((words[i] & mask) === mask) {
            if (out.first < 0) out.first = off / width + i;
            out.count++;
          }
        }
      }
    } finally {
      fs.closeSync(fd);
    }
    return out;
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
