// The exact surface of the native addon (native/src/node/). Everything model-shaped crosses
// here; text never does.
import * as path from 'node:path';

export type NativeFinishReason = 'stop' | 'length' | 'abort' | 'error';

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
}

export interface NativeSamplingParams {
  temperature?: number;        // 0: greedy
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  seed?: number;               // integer in [0, 2^53); absent: drawn by the engine
  maxTokens?: number;
  stopTokenIds?: number[];
  ignoreEos?: boolean;
  logprobs?: number;           // -1/absent: none; 0: chosen token; n: plus top n
}

export interface NativeTopLogprob { token: number; logprob: number }

export interface NativeSeqOutput {
  id: number;
  tokens: number[];
  logprobs?: number[];
  top?: NativeTopLogprob[][];
  finish: NativeFinishReason | null;
  error?: string;
  numPromptTokens: number;
  numCachedTokens: number;
  promptLogits?: Float32Array;  // [numPromptTokens * vocab], with the finishing output
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
}

export interface NativeEngine {
  /** Throws for an invalid request (empty prompt, id out of range, too long). */
  submit(id: number, prompt: number[] | Int32Array, params: NativeSamplingParams, promptLogits: boolean): void;
  abort(id: number): void;
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
