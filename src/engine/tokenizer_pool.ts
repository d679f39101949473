// Chat templates and tokenization, off the event loop and bounded. A model folder is untrusted:
// its Jinja template can loop for ever or build a huge list, its tokenizer.json can hold a regex
// that backtracks exponentially. So every request's text is rendered and encoded in a worker
// process (text_worker.ts) with a V8 heap limit and a wall-clock limit per task; a worker that
// passes either is killed and replaced, and the task fails with a TextLimitError naming the
// limit. Processes, not worker_threads: a worker thread's resourceLimits are best effort, and one
// large allocation past them aborts the whole server (nodejs/node#47224). The main thread only
// passes messages, so /ping and SIGTERM are answered whatever a worker is doing.
//
// Each worker runs one task at a time; tasks wait in one FIFO queue. A task's clock starts when
// a worker takes it.
import { type ChildProcess, spawn } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { type ChatMessage, ChatTemplateError } from './chat_template';
import type { EncodeOptions } from './tokenizer';

/** What one task may use. Settings: GYRE_TEXT_TIMEOUT_MS, GYRE_TEXT_MEMORY_MB. */
export interface TextLimits {
  timeoutMs: number;
  memoryMb: number;
}

export const DEFAULT_TEXT_LIMITS: TextLimits = { timeoutMs: 10_000, memoryMb: 512 };

/** The limits from the environment (defaults where unset); a malformed value throws, naming it. */
export function textLimitsFromEnv(env: Record<string, string | undefined> = process.env): TextLimits {
  const read = (name: string, fallback: number, min: number) => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < min) throw new Error(`${name}=${raw}: expected an integer >= ${min}`);
    return n;
  };
  return {
    timeoutMs: read('GYRE_TEXT_TIMEOUT_MS', DEFAULT_TEXT_LIMITS.timeoutMs, 10),
    memoryMb: read('GYRE_TEXT_MEMORY_MB', DEFAULT_TEXT_LIMITS.memoryMb, 64),
  };
}

/** A task the model's template or tokenizer could not finish within its limits. */
export class TextLimitError extends Error {
  constructor(readonly limit: 'time' | 'memory' | 'crash', message: string) {
    super(message);
    this.name = 'TextLimitError';
  }
}

export interface TokenizerPoolOptions extends Partial<TextLimits> {
  /** Workers; 0: one per core beyond the first, at least two (one stuck task leaves one free), at most four. */
  size?: number;
}

// Under ts-jest this file runs from src/; the worker is plain Node and needs the compiled copy.
function workerScript(): string {
  const here = require.resolve('./text_worker');
  return here.endsWith('.ts') ? path.resolve(__dirname, '..', '..', 'dist', 'engine', 'text_worker.js') : here;
}

interface Task {
  id: number;
  msg: { text?: string; messages?: ChatMessage[]; addBos: boolean; decode?: boolean };
  what: string;
  resolve: (ids: number[]) => void;
  reject: (e: Error) => void;
}

interface Slot {
  child: ChildProcess;
  ready: boolean;
  task?: Task;
  timer?: NodeJS.Timeout;
  /** Why it was killed (time limit), or what it said before dying. */
  killedFor?: TextLimitError;
  startError?: string;
  stderr: string;
}

type WorkerMessage = { ready?: boolean; startError?: string; id?: number; ids?: number[]; error?: string; template?: boolean };

// A worker that dies this many times in a row before saying ready breaks the pool (every task
// fails with the reason) instead of being restarted for ever. Loading gets at least START_MS.
const MAX_START_FAILURES = 3;
const START_MS = 30_000;

const live = new Set<ChildProcess>();
process.once('exit', () => { for (const c of live) c.kill('SIGKILL'); });

export class TokenizerPool {
  readonly limits: TextLimits;
  private readonly slots: Slot[] = [];
  private readonly queue: Task[] = [];
  private readonly script = workerScript();
  private nextId = 1;
  private pending = 0;
  private startFailures = 0;
  private broken?: Error;
  private closed = false;

  constructor(private readonly dir: string, opts: TokenizerPoolOptions = {}) {
    const given = Object.fromEntries(Object.entries(opts).filter(([k, v]) => v !== undefined && k !== 'size'));
    this.limits = { ...textLimitsFromEnv(), ...given };
    const n = opts.size && opts.size > 0 ? opts.size : Math.max(2, Math.min(4, os.availableParallelism() - 1));
    for (let i = 0; i < n; ++i) this.slots.push(this.spawn());
  }

  get size(): number {
    return this.slots.length;
  }

  /** Token ids of text (BOS added unless addBos is false); decode: also decode them (a probe). */
  encode(text: string, opts: EncodeOptions & { decode?: boolean } = {}): Promise<number[]> {
    return this.submit({ text, addBos: opts.addBos ?? true, decode: opts.decode }, 'the tokenizer');
  }

  /** The chat template's prompt for messages, encoded without another BOS. Template refusals
   *  reject with ChatTemplateError. */
  encodeChat(messages: readonly ChatMessage[]): Promise<number[]> {
    const msg = { messages: messages.map((m) => ({ role: m.role, content: m.content })), addBos: false };
    return this.submit(msg, 'the chat template and tokenizer');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const e = new Error('the tokenizer pool is closed');
    for (const t of this.queue.splice(0)) t.reject(e);
    await Promise.all(this.slots.map((s) => {
      const task = s.task;
      this.finish(s);
      task?.reject(e);
      const exited = new Promise((resolve) => (s.child.exitCode !== null || s.child.signalCode !== null) ? resolve(null) : s.child.once('exit', resolve));
      this.ref(s);   // until its exit is seen
      s.child.kill('SIGKILL');
      return exited;
    }));
  }

  private submit(msg: Task['msg'], what: string): Promise<number[]> {
    if (this.closed) return Promise.reject(new Error('the tokenizer pool is closed'));
    if (this.broken) return Promise.reject(this.broken);
    // While any task is queued or running, the workers keep the process alive.
    if (this.pending++ === 0) for (const slot of this.slots) this.ref(slot);
    const settled = () => { if (--this.pending === 0) for (const slot of this.slots) this.unref(slot); };
    return new Promise<number[]>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, msg, what, resolve, reject });
      this.dispatch();
    }).finally(settled);
  }

  private spawn(): Slot {
    const args = [`--max-old-space-size=${this.limits.memoryMb}`, `--max-semi-space-size=${Math.max(1, Math.min(16, this.limits.memoryMb >> 5))}`,
      '--stack-size=2000', this.script, this.dir];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'advanced' });
    live.add(child);
    const slot: Slot = { child, ready: false, stderr: '' };
    const startMs = Math.max(START_MS, this.limits.timeoutMs);
    slot.timer = setTimeout(() => { slot.startError = `loading the tokenizer took over ${startMs} ms`; child.kill('SIGKILL'); }, startMs);
    child.stderr!.on('data', (b: Buffer) => { slot.stderr = (slot.stderr + b.toString()).slice(-4096); });
    child.on('message', (m: WorkerMessage) => this.onMessage(slot, m));
    child.on('error', () => undefined);   // a failed spawn also emits 'exit'
    child.on('exit', (code, signal) => this.onExit(slot, code, signal));
    if (this.pending) this.ref(slot);
    else this.unref(slot);
    return slot;
  }

  private onMessage(slot: Slot, m: WorkerMessage): void {
    if (m.startError !== undefined) {
      slot.startError = m.startError;
      return;
    }
    if (m.ready) {
      clearTimeout(slot.timer);
      slot.timer = undefined;
      slot.ready = true;
      this.startFailures = 0;
      this.dispatch();
      return;
    }
    const task = slot.task;
    if (!task || task.id !== m.id) return;
    this.finish(slot);
    if (m.error === undefined) task.resolve(m.ids!);
    else task.reject(m.template ? new ChatTemplateError(m.error) : new Error(m.error));
    this.dispatch();
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (!this.queue.length) break;
      if (!slot.ready || slot.task) continue;
      const task = this.queue.shift()!;
      slot.task = task;
      slot.timer = setTimeout(() => {
        slot.killedFor = new TextLimitError('time',
          `${task.what} did not finish within ${this.limits.timeoutMs} ms (GYRE_TEXT_TIMEOUT_MS); its worker was replaced`);
        slot.ready = false;
        slot.child.kill('SIGKILL');
      }, this.limits.timeoutMs);
      slot.child.send({ id: task.id, ...task.msg });
    }
  }

  private finish(slot: Slot): void {
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = undefined;
    slot.task = undefined;
  }

  private ref(slot: Slot): void {
    slot.child.ref();
    slot.child.channel?.ref();
  }

  private unref(slot: Slot): void {
    slot.child.unref();
    slot.child.channel?.unref();
    (slot.child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
  }

  private onExit(slot: Slot, code: number | null, signal: NodeJS.Signals | null): void {
    live.delete(slot.child);
    const task = slot.task;
    const wasReady = slot.ready;
    this.finish(slot);
    if (this.closed) return;
    if (task) {
      const oom = /heap out of memory|Allocation failed/i.test(slot.stderr);
      task.reject(slot.killedFor ?? (oom
        ? new TextLimitError('memory', `${task.what} ran out of its ${this.limits.memoryMb} MB heap (GYRE_TEXT_MEMORY_MB); its worker was replaced`)
        : new TextLimitError('crash', `${task.what} stopped its worker (${signal ?? `exit code ${code}`}); the worker was replaced`)));
    }
    if (!wasReady && !slot.killedFor && ++this.startFailures >= MAX_START_FAILURES) {
      const why = slot.startError ?? (slot.stderr.trim().split('\n').pop() || `exit code ${code ?? signal}`);
      this.broken = new Error(`the tokenizer worker could not start: ${why}`);
      for (const t of this.queue.splice(0)) t.reject(this.broken);
      return;
    }
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots[i] = this.spawn();
  }
}
