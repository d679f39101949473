// The engine facade: loads the addon, the tokenizer and the chat template; turns requests into
// token ids, submits them, and routes the engine's per-step outputs to per-request streams.
// All model work runs on the engine's own thread; nothing here blocks the event loop.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ChatTemplate, type ChatMessage, encodeChat } from './chat_template';
import {
  loadAddon, type NativeEngine, type NativeEngineOptions, type NativeEngineStats, type NativeModelConfig,
  type NativeQuantization, type NativeSeqOutput, type SamplingParams,
} from './native';
import { ConstrainedSequence, type Grammar, GrammarCompiler, type GrammarSpec } from './grammar';
import { type GenerationChunk, RequestStream } from './request_stream';
import { IncrementalDecoder, Tokenizer } from './tokenizer';
import { TokenizerPool } from './tokenizer_pool';

export type { FinishReason, GenerationChunk, RequestStream, Usage } from './request_stream';
export type { SamplingParams } from './native';
export type { ChatMessage } from './chat_template';
export type { Grammar, GrammarSpec } from './grammar';

export type EngineOptions = NativeEngineOptions;

export interface GenerationRequest {
  id?: number;                 // default: the next free id
  /** Exactly one of promptIds (used as given), prompt (BOS added unless addBos is false) or
   *  messages (rendered by the chat template). */
  promptIds?: number[];
  prompt?: string;
  messages?: ChatMessage[];
  addBos?: boolean;
  /** Handed to the engine as they are (constrained follows grammar). */
  params?: SamplingParams;
  stop?: string[];             // stop strings: the text is cut at the first match
  promptLogits?: boolean;      // the last chunk carries the logits of every prompt position
  /** The last chunk carries log p(prompt[i+1] | prompt[..i]) for every position (no prefix caching). */
  promptLogprobs?: boolean;
  /** Structured output: every token is drawn from those the grammar allows (engine.compileGrammar). */
  grammar?: Grammar;
}

export class Engine {
  readonly config: NativeModelConfig;
  private readonly streams = new Map<number, RequestStream>();
  private readonly steps: NativeSeqOutput[][] = [];   // received, not yet delivered
  private readonly constrained = new Map<number, ConstrainedSequence>();
  private grammars?: GrammarCompiler;
  private nextId = 1;
  private chatTemplate?: ChatTemplate;
  private pool?: TokenizerPool;
  private closing?: Promise<void>;

  private constructor(
    readonly modelDir: string,
    private readonly native: NativeEngine,
    readonly tokenizer: Tokenizer | undefined,
    router: { target?: Engine },
  ) {
    router.target = this;
    this.config = native.config();
  }

  /** Loads the model off the JS thread and starts the engine. A folder without tokenizer.json
   *  gives an ids-only engine. */
  static async load(modelDir: string, opts: EngineOptions = {}): Promise<Engine> {
    const dir = path.resolve(modelDir);
    const addon = loadAddon();
    const tokenizer = fs.existsSync(path.join(dir, 'tokenizer.json')) ? Tokenizer.fromModelDir(dir) : undefined;
    // Outputs can only arrive after a submit, so the engine object exists by then.
    const router: { target?: Engine } = {};
    // The tokenizer's EOS ids (tokenizer_config.json, generation_config.json) end sequences as
    // config.json's do, and are reported as 'eos'.
    let options = opts;
    if (tokenizer) {
      const vocab = addon.readConfig(dir).vocabSize;
      const bad = tokenizer.eosTokenIds.find((id) => id >= vocab);
      if (bad !== undefined) {
        throw new Error(`${dir}: the tokenizer's EOS token id ${bad} (tokenizer_config.json eos_token or generation_config.json eos_token_id) is outside the model's vocabulary [0, ${vocab})`);
      }
      options = { ...opts, eosTokenIds: [...(opts.eosTokenIds ?? []), ...tokenizer.eosTokenIds] };
    }
    const native = await addon.loadEngine(dir, options, (outputs) => router.target?.onStep(outputs));
    return new Engine(dir, native, tokenizer, router);
  }

  get backend(): string {
    return this.native.backend();
  }

  /** The loaded weights: int8 when quantized at load or read from int8 files. */
  get quantization(): NativeQuantization {
    return this.config.quantization ?? 'none';
  }

  get maxModelLen(): number {
    return this.native.maxModelLen();
  }

  get numInFlight(): number {
    return this.streams.size;
  }

  /** Token ids of a request's prompt. Throws for a missing/ambiguous prompt or a missing tokenizer. */
  promptIds(req: Pick<GenerationRequest, 'promptIds' | 'prompt' | 'messages' | 'addBos'>): number[] {
    const given = [req.promptIds, req.prompt, req.messages].filter((p) => p !== undefined).length;
    if (given !== 1) throw new Error('a request needs exactly one of promptIds, prompt or messages');
    if (req.promptIds) return req.promptIds;
    const tokenizer = this.requireTokenizer();
    if (req.prompt !== undefined) return tokenizer.encode(req.prompt, { addBos: req.addBos ?? true });
    this.chatTemplate ??= ChatTemplate.fromModelDir(this.modelDir);
    return encodeChat(tokenizer, this.chatTemplate, req.messages!);
  }

  /** promptIds, with texts rendered and tokenized on worker threads under the model-folder
   *  limits (TokenizerPool): the event loop stays free whatever the template or tokenizer does.
   *  Rejects with ChatTemplateError (the template refused the messages) or TextLimitError. */
  async encodePrompt(req: Pick<GenerationRequest, 'promptIds' | 'prompt' | 'messages' | 'addBos'>): Promise<number[]> {
    const given = [req.promptIds, req.prompt, req.messages].filter((p) => p !== undefined).length;
    if (given !== 1 || req.promptIds) return this.promptIds(req);
    this.requireTokenizer();
    this.pool ??= new TokenizerPool(this.modelDir);
    if (req.prompt !== undefined) return this.pool.encode(req.prompt, { addBos: req.addBos ?? true });
    return this.pool.encodeChat(req.messages!);
  }

  /**
   * Submits a request now and returns its chunks. Invalid requests (empty prompt, id out of
   * range, too long) throw here. Leaving the loop early aborts the request in the engine.
   */
  generate(req: GenerationRequest): RequestStream {
    if (this.closing) throw new Error('the engine is closed');
    const ids = this.promptIds(req);
    const id = req.id ?? this.allocateId();
    if (this.streams.has(id)) throw new Error(`request id ${id} is already in flight`);
    const params: SamplingParams = { ...req.params, constrained: req.grammar !== undefined };
    const decoder = this.tokenizer
      ? new IncrementalDecoder(this.tokenizer, { promptIds: ids, skipSpecial: true })
      : undefined;
    const stream = new RequestStream(id, { decoder, stop: req.stop, abort: () => this.abort(id) });
    if (req.promptLogprobs) this.native.submit(id, ids, params, req.promptLogits ?? false, true);
    else this.native.submit(id, ids, params, req.promptLogits ?? false);
    this.streams.set(id, stream);
    if (req.grammar) {
      const seq = new ConstrainedSequence(this.grammars!, req.grammar,
        (index, mask) => { if (!this.closing) this.native.setMask(id, index, mask); },
        (message) => {
          stream.fail('error', `structured output: ${message}`);
          this.abort(id);
        });
      this.constrained.set(id, seq);
      seq.start();
    }
    return stream;
  }

  /** Compiles (or finds in the cache) the grammar of a structured-output request. Throws
   *  XgrammarError with xgrammar's message for a grammar it cannot compile. */
  compileGrammar(spec: GrammarSpec): Promise<Grammar> {
    const tokenizer = this.requireTokenizer();
    const stops = [...new Set([...this.config.eosTokenIds, ...tokenizer.eosTokenIds])];   // the engine's EOS ids
    this.grammars ??= new GrammarCompiler(tokenizer, this.config.vocabSize, stops,
      (busy) => { if (!this.closing) this.native.setGrammarBusy(busy); });
    return this.grammars.compile(spec);
  }

  /** Aborts a request; its stream ends with finishReason 'abort'. */
  abort(id: number): void {
    if (!this.closing) this.native.abort(id);
  }

  stats(): NativeEngineStats {
    return this.native.stats();
  }

  /** Logits of every position of a prompt (no BOS added): [ids.length * vocab]. */
  async logits(ids: number[]): Promise<Float32Array> {
    let logits: Float32Array | undefined;
    let failure: string | undefined;
    for await (const chunk of this.generate({ promptIds: ids, params: { maxTokens: 0, temperature: 0 }, promptLogits: true })) {
      if (chunk.promptLogits) logits = chunk.promptLogits;
      if (chunk.finishReason === 'error' || chunk.finishReason === 'abort') failure = chunk.error ?? chunk.finishReason;
    }
    if (!logits) throw new Error(`no logits returned${failure ? `: ${failure}` : ''}`);
    return logits;
  }

  /** log p(ids[i+1] | ids[0..i]) for i < ids.length - 1 (no BOS added), computed by the engine
   *  from the float32 logits in double precision: [ids.length - 1]. */
  async promptLogprobs(ids: number[]): Promise<Float32Array> {
    let logprobs: Float32Array | undefined;
    let failure: string | undefined;
    for await (const chunk of this.generate({ promptIds: ids, params: { maxTokens: 0, temperature: 0 }, promptLogprobs: true })) {
      if (chunk.promptLogprobs) logprobs = chunk.promptLogprobs;
      if (chunk.finishReason === 'error' || chunk.finishReason === 'abort') failure = chunk.error ?? chunk.finishReason;
    }
    if (failure) throw new Error(`prompt logprobs failed: ${failure}`);
    if (!logprobs && ids.length === 1) return new Float32Array(0);
    if (!logprobs || logprobs.length !== ids.length - 1) {
      throw new Error(`the engine returned ${logprobs ? logprobs.length : 'no'} prompt logprobs for ${ids.length} tokens`);
    }
    return logprobs;
  }

  /** Stops the engine thread; unfinished requests end with 'abort'. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= Promise.all([this.native.close(), this.pool?.close()]).then(() => undefined).finally(() => {
      for (let step = this.steps.shift(); step; step = this.steps.shift()) this.deliver(step);
      for (const stream of this.streams.values()) stream.fail('abort', 'the engine was closed');
      this.streams.clear();
      for (const seq of this.constrained.values()) seq.close();
      this.constrained.clear();
    });
    return this.closing;
  }

  /**
   * Steps are delivered one per turn of the event loop. Node runs up to 1000 queued thread-safe
   * calls back to back, and each step's outputs are formatted and written before the next; when
   * the engine ran ahead (many streams with logprobs), that held off /ping for seconds. Now I/O
   * is served between any two steps; the engine still never waits on JS.
   */
  private onStep(outputs: NativeSeqOutput[]): void {
    // Grammar matchers advance at once: the engine waits for their next masks, not for I/O.
    if (this.constrained.size) {
      for (const out of outputs) {
        const seq = this.constrained.get(out.id);
        if (!seq) continue;
        if (out.finish) {
          seq.close();
          this.constrained.delete(out.id);
        } else if (out.tokens.length) {
          seq.advance(out.tokens);
        }
      }
    }
    this.steps.push(outputs);
    if (this.steps.length === 1) setImmediate(this.deliverNext);
  }

  private readonly deliverNext = (): void => {
    const outputs = this.steps.shift();
    if (outputs) this.deliver(outputs);
    if (this.steps.length) setImmediate(this.deliverNext);
  };

  private deliver(outputs: NativeSeqOutput[]): void {
    for (const out of outputs) {
      const stream = this.streams.get(out.id);
      if (!stream) continue;
      stream.onOutput(out);
      if (out.finish) this.streams.delete(out.id);
    }
  }

  private allocateId(): number {
    while (this.streams.has(this.nextId)) this.nextId++;
    return this.nextId++;
  }

  private requireTokenizer(): Tokenizer {
    if (!this.tokenizer) throw new Error(`${this.modelDir} has no tokenizer.json: give token ids instead of text`);
    return this.tokenizer;
  }
}
