// What fits on one NVIDIA A10G, and what SageMaker accepts for ml.g5. Every check here runs at
// synth time, so a combination that cannot work fails before anything is deployed. Model shapes
// and GPU memory come from the engine's own plan (the addon's planGpuMemory): the stack refuses
// exactly what the CUDA backend could not serve.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** ml.g5 sizes with exactly one A10G: 4 to 64 vCPUs, 16 to 256 GiB of host memory. */
export const SINGLE_A10G_INSTANCES = ['ml.g5.xlarge', 'ml.g5.2xlarge', 'ml.g5.4xlarge', 'ml.g5.8xlarge', 'ml.g5.16xlarge'] as const;
export type InstanceType = (typeof SINGLE_A10G_INSTANCES)[number];
const MULTI_GPU: Record<string, number> = { 'ml.g5.12xlarge': 4, 'ml.g5.24xlarge': 4, 'ml.g5.48xlarge': 8 };

export type Quantization = 'none' | 'int8';

/** The container's CUDA 12.4 needs driver 550: this AMI (without it, g5 gets driver 470). */
export const INFERENCE_AMI_VERSION = 'al2-ami-sagemaker-inference-gpu-3-1';

/** SageMaker's bounds for both startup timeouts. */
export const MIN_TIMEOUT_S = 60;
export const MAX_TIMEOUT_S = 3600;

export function checkInstanceType(instanceType: string): InstanceType {
  if ((SINGLE_A10G_INSTANCES as readonly string[]).includes(instanceType)) return instanceType as InstanceType;
  const allowed = SINGLE_A10G_INSTANCES.join(', ');
  if (MULTI_GPU[instanceType]) {
    throw new Error(`${instanceType} has ${MULTI_GPU[instanceType]} A10G GPUs; Gyre serves one model on one GPU, ` +
      `so the others would sit idle at full price. Use a single-A10G size: ${allowed}.`);
  }
  throw new Error(`${instanceType} is not a single-A10G ml.g5 instance. The container is built for the A10G (sm_86) ` +
    `and the CUDA 12.4 driver of ${INFERENCE_AMI_VERSION}; use one of: ${allowed}.`);
}

/** The slice of the addon (src/engine/native.ts) the stack uses. */
interface GpuPlan { totalBytes: number; budgetBytes: number; weightBytes: number; kvBytes: number; kvTokens: number }
interface SizingAddon {
  shapeNames(): string[];
  shapeConfig(name: string): { maxPositionEmbeddings: number };
  planGpuMemory(model: { shape: string }, options: { int8?: boolean; maxModelLen?: number }): GpuPlan;
}

let addon: SizingAddon | undefined;
/** The engine's addon, found above this file (infra/lib under ts-node and jest, infra/dist/lib once compiled). */
function sizingAddon(): SizingAddon {
  if (addon) return addon;
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'native', 'build', 'Release', 'gyre.node');
    if (fs.existsSync(file)) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return addon = require(file) as SizingAddon;
    }
    if (path.dirname(dir) === dir) throw new Error('the Gyre addon (native/build/Release/gyre.node) is not built: run npm ci in the repository first');
  }
}

/** The model shapes the stack can size (the engine's table: llama-2-7b, llama-2-13b, mistral-7b, ...). */
export function shapeNames(): string[] {
  return sizingAddon().shapeNames();
}

/** The CUDA backend's memory plan for a shape on one A10G. */
export function planOnA10g(shape: string, quantization: Quantization, maxModelLen?: number): GpuPlan {
  return sizingAddon().planGpuMemory({ shape }, { int8: quantization === 'int8', maxModelLen });
}

/** Refuses a model whose KV pool on one A10G would not hold one full context (maxModelLen, else the shape's). */
export function checkFits(modelName: string, shape: string, quantization: Quantization, maxModelLen?: number): void {
  const context = maxModelLen ?? sizingAddon().shapeConfig(shape).maxPositionEmbeddings;
  const plan = planOnA10g(shape, quantization, maxModelLen);
  if (plan.kvTokens >= context) return;
  const gb = (n: number) => `${(n / 1e9).toFixed(1)} GB`;
  const int8 = quantization === 'none' ? planOnA10g(shape, 'int8', maxModelLen) : undefined;
  const hint = int8 && int8.kvTokens >= context ? ' Use 8-bit weights (quantization=int8), as the llama-2-13b-chat preset does.' : '';
  const left = plan.kvBytes < 0 ? 'nothing' : `room for ${plan.kvTokens} tokens`;
  throw new Error(`${modelName} (${shape}) in ${quantization === 'none' ? 'fp16' : quantization} needs ${gb(plan.weightBytes)} of weights; ` +
    `one A10G has ${gb(plan.totalBytes)}, Gyre's budget is ${gb(plan.budgetBytes)}, and after the weights and step buffers ` +
    `the KV cache has ${left}, less than one ${context}-token context, so it cannot be served on one A10G.${hint}`);
}

export function checkTimeout(name: string, seconds: number): number {
  if (!Number.isInteger(seconds) || seconds < MIN_TIMEOUT_S || seconds > MAX_TIMEOUT_S) {
    throw new Error(`${name} must be a whole number of seconds from ${MIN_TIMEOUT_S} to ${MAX_TIMEOUT_S} (SageMaker's bounds), got ${seconds}`);
  }
  return seconds;
}

export interface S3Location { uri: string; bucket: string; prefix: string }

/** `s3://bucket/prefix/`: the prefix gets its trailing slash, as S3Prefix model data expects. */
export function parseS3Uri(uri: string): S3Location {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/(.+)$/.exec(uri);
  if (!m) throw new Error(`model S3 URI must look like s3://bucket/prefix/ (a folder of HF files, not the bucket root), got '${uri}'`);
  const prefix = m[2].endsWith('/') ? m[2] : `${m[2]}/`;
  if (prefix.includes('*') || prefix.startsWith('/')) throw new Error(`model S3 prefix must be a plain folder path, got '${m[2]}'`);
  return { uri: `s3://${m[1]}/${prefix}`, bucket: m[1], prefix };
}
