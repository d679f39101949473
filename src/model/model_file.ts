// Opening a file of a model folder, which is untrusted input (native/src/model/model_file.cc keeps
// the same rules): the name is a plain file name; the file, after symlinks, lies inside the
// folder; it is a regular file (a FIFO or device would block or never end), opened non-blocking
// and checked on the open descriptor; its size is bounded before it is read. Messages name the
// file and never echo its bytes.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** JSON files of a model folder: tokenizer.json may be large; the others are small. */
export const MAX_TOKENIZER_JSON_BYTES = 64 * 2 ** 20;
export const MAX_JSON_BYTES = 16 * 2 ** 20;

/** A name that stays in the folder: no separators, not '.', '..' or empty, no NUL. */
export function isPlainName(name: unknown): name is string {
  return typeof name === 'string' && name !== '' && name !== '.' && name !== '..' && !/[/\\\0]/.test(name);
}

/** Opens dir/name read-only after the checks above; throws naming the file. */
export function openModelFile(dir: string, name: string): { fd: number; size: number; file: string } {
  const file = path.join(dir, name);
  if (!isPlainName(name)) throw new Error(`${file}: '${name}' is not a plain file name inside the model folder`);
  let real: string;
  try {
    real = fs.realpathSync(file);
  } catch (e) {
    throw new Error(`${file}: cannot open (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const realDir = fs.realpathSync(dir);
  if (path.dirname(real) !== realDir && !real.startsWith(realDir + path.sep)) {
    throw new Error(`${file}: a symlink that leads outside the model folder; copy the file in instead (cp -L)`);
  }
  const fd = fs.openSync(real, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
  const st = fs.fstatSync(fd);
  if (!st.isFile()) {
    fs.closeSync(fd);
    throw new Error(`${file}: not a regular file`);
  }
  return { fd, size: st.size, file };
}

/** Whether dir/name exists at all (even as something openModelFile refuses). */
export function modelFileExists(dir: string, name: string): boolean {
  try {
    fs.lstatSync(path.join(dir, name));
    return true;
  } catch {
    return false;
  }
}

/** The bytes of dir/name as UTF-8 text, refused above maxBytes. */
export function readModelFile(dir: string, name: string, maxBytes = MAX_JSON_BYTES): string {
  const { fd, size, file } = openModelFile(dir, name);
  try {
    if (size > maxBytes) throw new Error(`${file}: ${size} bytes, over the limit of ${maxBytes} for this file`);
    const buf = Buffer.alloc(size);
    let got = 0;
    while (got < size) {
      const n = fs.readSync(fd, buf, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
    return buf.toString('utf8', 0, got);
  } finally {
    fs.closeSync(fd);
  }
}

/** JSON.parse whose error names the file and a position, never the text (V8 quotes it). */
export function parseModelJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const at = /position (\d+)/.exec((e as Error).message);
    throw new Error(`${file}: not valid JSON${at ? ` (at byte ${at[1]})` : ''}`);
  }
}

/** dir/name parsed as a JSON object; undefined when the file is absent. */
export function readModelJson(dir: string, name: string, maxBytes = MAX_JSON_BYTES): Record<string, unknown> | undefined {
  if (!modelFileExists(dir, name)) return undefined;
  const file = path.join(dir, name);
  const v = parseModelJson(readModelFile(dir, name, maxBytes), file);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${file}: expected a JSON object`);
  return v as Record<string, unknown>;
}
