// Stock models Gyre deploys without configuration: a table of names to what each needs
// (the engine's model shape for the GPU check, engine limits, startup timeouts). `byo` is a
// customer's fine-tune of one of these architectures, sized by its shape.
import type { InstanceType, Quantization } from './sizing';

export interface Preset {
  /** A shape of the engine's table (gyre/shapes.h): what the GPU check sizes. */
  readonly shape: string;
  readonly quantization: Quantization;
  readonly instanceType: InstanceType;
  /** Engine limits; unset, the engine takes them from the model's config. */
  readonly maxModelLen?: number;
  readonly maxInputTokens?: number;
  readonly maxBatchTokens?: number;
  /** S3 -> /opt/ml/model on NVMe at a conservative ~50 MB/s, with margin. */
  readonly modelDataDownloadTimeoutS: number;
  /** Container start -> /ping 200: mmap the weights, copy (and quantize) them to the GPU, warm up. */
  readonly startupHealthCheckTimeoutS: number;
}

const llama2Limits = { maxModelLen: 4096, maxInputTokens: 3584, maxBatchTokens: 4096 };
const sevenB = { modelDataDownloadTimeoutS: 900, startupHealthCheckTimeoutS: 600 };

export const PRESETS = {
  'llama-2-7b-chat': { shape: 'llama-2-7b', quantization: 'none', instanceType: 'ml.g5.2xlarge', ...llama2Limits, ...sevenB },
  // 26 GB in fp16 does not fit one A10G; 8-bit weights take 13 GB. The fp16 checkpoint may be
  // what is uploaded (quantized at load), so the timeouts are sized for 26 GB.
  'llama-2-13b-chat': {
    shape: 'llama-2-13b', quantization: 'int8', instanceType: 'ml.g5.2xlarge', ...llama2Limits,
    modelDataDownloadTimeoutS: 1800, startupHealthCheckTimeoutS: 1200,
  },
  // Sliding-window attention keeps long contexts cheap; 8K tokens of GQA KV is 1 GiB a sequence.
  'mistral-7b-instruct': {
    shape: 'mistral-7b', quantization: 'none', instanceType: 'ml.g5.2xlarge',
    maxModelLen: 8192, maxInputTokens: 7680, maxBatchTokens: 8192, ...sevenB,
  },
  // A fine-tune of a 7B Llama-2 or Mistral unless told otherwise (-c shape=llama-2-13b); the
  // engine reads its context length from the model's config.json.
  byo: { shape: 'mistral-7b', quantization: 'none', instanceType: 'ml.g5.2xlarge', ...sevenB },
} satisfies Record<string, Preset>;

export type PresetName = keyof typeof PRESETS;
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];
export const DEFAULT_PRESET: PresetName = 'llama-2-7b-chat';

export function preset(name: string): Preset {
  if (!(name in PRESETS)) throw new Error(`unknown preset '${name}'; choose one of: ${PRESET_NAMES.join(', ')}`);
  return PRESETS[name as PresetName];
}
