// Tokenization off the event loop. @huggingface/tokenizers runs in JavaScript at about 10 ms per
// 1,000 characters, so a long prompt encoded on the main thread would stall every stream the
// server is sending. Long texts go to worker threads that hold their own copy of the tokenizer;
// short ones (cheaper than a message round trip) are encoded in place. Same library, same
// tokenizer.json: the ids are the same either way.
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { EncodeOptions, Tokenizer } from './tokenizer';

const INLINE_MAX_CHARS = 512;

// The worker: builds the tokenizer the way Tokenizer.fromModelDir does, then answers
// {id, text, addBos} with {id, ids} or {id, error}.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { Tokenizer } = require(workerData.tokenizerModule);
const tokenizer = Tokenizer.fromModelDir(workerData.dir);
parentPort.on('message', (m) => {
  try {
    parentPort.postMessage({ id: m.id, ids: tokenizer.encode(m.text, { addBos: m.addBos }) });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.message || e) });
  }
});
`;

// Under ts-jest this file runs from src/; the worker is plain Node and needs the compiled copy.
function compiledTokenizerModule(): string {
  const here = require.resolve('./tokenizer');
  return here.endsWith('.ts') ? path.resolve(__dirname, '..', '..', 'dist', 'engine', 'tokenizer.js') : here;
}

interface Pending { resolve: (ids: number[]) => void; reject: (e: Error) => void }

export class TokenizerPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly load: number[] = [];
  private nextId = 1;
  private closed = false;

  /** size 0: one worker per core beyond the first, at least one, at most four. */
  constructor(private readonly tokenizer: Tokenizer, dir: string, size = 0) {
    const n = size > 0 ? size : Math.max(1, Math.min(4, os.availableParallelism() - 1));
    const tokenizerModule = compiledTokenizerModule();
    for (let i = 0; i < n; ++i) {
      const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { dir, tokenizerModule } });
      w.on('message', (m: { id: number; ids?: number[]; error?: string }) => this.settle(i, m));
      w.on('error', (e) => this.failAll(e));
      w.unref();
      this.workers.push(w);
      this.load.push(0);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  encode(text: string, opts: EncodeOptions = {}): Promise<number[]> {
    if (this.closed) return Promise.reject(new Error('the tokenizer pool is closed'));
    if (text.length <= INLINE_MAX_CHARS) {
      try {
        return Promise.resolve(this.tokenizer.encode(text, opts));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    const i = this.load.indexOf(Math.min(...this.load));
    const id = this.nextId++;
    return new Promise<number[]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.load[i]++ === 0) this.workers[i].ref();  // a pending answer keeps the process alive
      this.workers[i].postMessage({ id, text, addBos: opts.addBos ?? true });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new Error('the tokenizer pool is closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private settle(worker: number, m: { id: number; ids?: number[]; error?: string }): void {
    if (--this.load[worker] === 0) this.workers[worker].unref();
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (m.error !== undefined) p.reject(new Error(m.error));
    else p.resolve(m.ids!);
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
