// The exact surface of the native addon (native/src/node/). Everything model-shaped crosses
// here; text never does.
import * as path from 'node:path';

/** Why the engine ended a sequence: an EOS token (config.json's or EngineOptions.eosTokenIds), one of
 *  the request's stopTokenIds, maxTokens or the context, an abort, or an error. */
export type NativeFinishReason = 'eos' | 'stop_token' | 'length' | 'abort' | 'error';

export interface NativeEngineOptions {
  backend?: 'auto' | 'cpu' | 'cuda';
  numThreads?: number;          // 0: all cores
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number; // token budget per step
  maxModelLen?: number;         // 0: the model's
  blockSize?: number;           // tokens per KV block (16)
  kvCacheTokens?: number;       // KV pool size in tokens (0: default)
  kvCacheBytes?: number;        // or in bytes
  enablePrefixCaching?: boolean;
  /** CUDA: share of the GPU's memory used for weights, step buffers and KV cache, in (0, 1] (default 0.9). */
  gpuMemoryFraction?: number;
  /** CUDA: absolute cap on that memory, in bytes (0/absent: none). */
  gpuMemoryBudget?: number;
  /** int8: float linear weights are quantized at load (per output channel, symmetric). A model
   *  whose files are already int8 (`gyre quantize`) runs int8 either way. Default none. */
  quantization?: NativeQuantization;
  /** With int8: the LM head too (default false: it stays in its float dtype). */
  quantizeLmHead?: boolean;
  /** EOS ids besides config.json's (the tokenizer's, generation_config.json's): they end a
   *  sequence as 'eos' too. */
  eosTokenIds?: number[];
}

export type NativeQuantization = 'none' | 'int8';
export const QUANTIZATIONS: readonly NativeQuantization[] = ['none', 'int8'];

/** gyre::SamplingParams (native/include/gyre/sampling.h) field for field: the one shape every API
 *  maps its request onto, read by the addon as it is. An absent field takes the engine's default. */
export interface SamplingParams {
  temperature?: number;        // 0: greedy (default 1)
  topK?: number;               // 0: off
  topP?: number;               // 1: off
  minP?: number;               // 0: off
  repetitionPenalty?: number;  // 1: off
  presencePenalty?: number;
  frequencyPenalty?: number;
  seed?: number;               // integer in [0, 2^53); absent: drawn by the engine
  maxTokens?: number;          // new tokens (default 16)
  stopTokenIds?: number[];     // besides EOS; reported as 'stop_token'
  ignoreEos?: boolean;
  logprobs?: number;           // -1/absent: none; 0: chosen token; n: plus top n
  /** Structured output: each token waits for its mask (setMask); EOS always stops. */
  constrained?: boolean;
}

export interface NativeTopLogprob { token: number; logprob: number }

export interface NativeSeqOutput {
  id: number;
  tokens: number[];
  logprobs?: number[];
  top?: NativeTopLogprob[][];
  finish: NativeFinishReason | null;
  /** With 'eos' and 'stop_token': the token that ended the sequence (the last of tokens). */
  stopTokenId?: number;
  error?: string;
  numPromptTokens: number;
  numCachedTokens: number;
  promptLogits?: Float32Array;  // [numPromptTokens * vocab], with the finishing output
  /** [numPromptTokens - 1], with the finishing output when asked: entry i is
   *  log p(prompt[i+1] | prompt[0..i]) (log-softmax of the float32 logits, in double). */
  promptLogprobs?: Float32Array;
}

export interface NativeModelConfig {
  architecture: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  ropeTheta: number;
  slidingWindow: number;        // 0: none
  tieWordEmbeddings: boolean;
  bosTokenId: number;
  eosTokenIds: number[];
  dtype: 'f32' | 'f16' | 'bf16';
  /** Of the loaded weights (readConfig: of the files, from config.json's quantization_config). */
  quantization: NativeQuantization;
}

export interface NativeEngineStats {
  numRunning: number;
  numWaiting: number;
  numPreemptions: number;
  numBlocksTotal: number;
  numBlocksUsed: number;
  numBlocksFree: number;
  numBlocksCached: number;
  prefixCacheHitTokens: number;
  prefixCacheQueryTokens: number;
  numBlocksReleasedWindow: number;
  numSteps: number;
  numPromptTokens: number;
  numGeneratedTokens: number;
  /** Time the engine thread waited for structured-output token masks, in all. */
  maskWaitMs: number;
}

export interface NativeEngine {
  /** Throws for an invalid request (empty prompt, id out of range, too long). promptLogprobs:
   *  the finishing output carries promptLogprobs; prefix caching does not apply to it. */
  submit(id: number, prompt: number[] | Int32Array, params: SamplingParams, promptLogits: boolean,
         promptLogprobs?: boolean): void;
  abort(id: number): void;
  /** A constrained request's allowed tokens for output token number outputIndex: bit t % 32 of
   *  mask[t / 32], ceil(vocab / 32) words. Ignored once the request has finished. */
  setMask(id: number, outputIndex: number, mask: Int32Array | Uint32Array): void;
  /** True while JS compiles a grammar (and so cannot post masks): a constrained sequence whose
   *  mask is missing then sits out with its logits held instead of stalling the step. */
  setGrammarBusy(busy: boolean): void;
  stats(): NativeEngineStats;
  config(): NativeModelConfig;
  backend(): string;
  maxModelLen(): number;
  blockSize(): number;
  /** Stops the engine thread; pending requests are dropped. */
  close(): Promise<void>;
}

export interface NativeAddon {
  /** Loads weights and starts the engine thread, off the JS thread. onStep runs once per engine
   *  step with the outputs of every sequence that produced something. */
  loadEngine(modelDir: string, options: NativeEngineOptions,
             onStep: (outputs: NativeSeqOutput[]) => void): Promise<NativeEngine>;
  /** Reads and validates <modelDir>/config.json (synchronous, cheap). */
  readConfig(modelDir: string): Omit<NativeModelConfig, 'dtype'>;
  /** Symmetric per-row absmax int8 (scale = absmax / 127, q = round-half-even(w / scale) clamped
   *  to +-127), synchronous; the same function the loader quantizes at load with. data holds
   *  rows * cols elements of dtype, little-endian. */
  quantizeInt8(data: Uint8Array, dtype: 'F32' | 'F16' | 'BF16', rows: number, cols: number): NativeInt8Tensor;
  /** The model shapes known by name (native/include/gyre/shapes.h): tiny, 100m, llama-2-7b, ... */
  shapeNames(): string[];
  /** A named shape's config; throws naming the known shapes. */
  shapeConfig(name: string): Omit<NativeModelConfig, 'dtype'>;
  /** The KV pool the CUDA backend sizes for a model on a card (gyre/gpu_memory.h plan_gpu_memory):
   *  weights as it uploads them, the engine's default step, a CUDA-context estimate. */
  planGpuMemory(model: NativePlanModel, options?: NativePlanOptions): NativeGpuPlan;
  /** SO_SNDBUF on a socket's file descriptor (the kernel doubles it); false when it failed. */
  setSendBuffer(fd: number, bytes: number): boolean;
}

/** Exactly one of shape (a name from shapeNames) and modelDir (its config.json). */
export interface NativePlanModel { shape?: string; modelDir?: string; layers?: number }

export interface NativePlanOptions {
  /** What the card reports (default: an A10G's 23,028 MiB). */
  totalBytes?: number;
  gpuMemoryFraction?: number;
  gpuMemoryBudget?: number;
  /** Held before the model (default 512 MiB: CUDA context, cuBLASLt workspace). */
  contextBytes?: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  maxModelLen?: number;
  blockSize?: number;
  /** Linear weights int8 with float32 row scales (and the LM head too with int8LmHead). */
  int8?: boolean;
  int8LmHead?: boolean;
}

/** Bytes on the card; kvBytes < 0: weights and step buffers alone exceed the budget. */
export interface NativeGpuPlan {
  totalBytes: number;
  budgetBytes: number;
  weightBytes: number;
  stepBytes: number;
  activationBytes: number;
  logitsBytes: number;
  workspaceBytes: number;
  contextBytes: number;
  marginBytes: number;
  kvBytes: number;
  kvBytesPerToken: number;
  blockSize: number;
  kvBlocks: number;
  kvTokens: number;
}

export interface NativeInt8Tensor {
  q: Int8Array;                 // [rows * cols]
  scale: Float32Array;          // [rows]
}

let cached: NativeAddon | undefined;

export function loadAddon(): NativeAddon {
  if (!cached) {
    const file = path.resolve(__dirname, '..', '..', 'native', 'build', 'Release', 'gyre.node');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    cached = require(file) as NativeAddon;
  }
  return cached;
}
