// What fits on one NVIDIA A10G (24 GB), and what SageMaker accepts for ml.g5. Every check here
// runs at synth time, so a combination that cannot work fails before anything is deployed.

/** ml.g5 sizes with exactly one A10G: 4 to 64 vCPUs, 16 to 256 GiB of host memory. */
export const SINGLE_A10G_INSTANCES = ['ml.g5.xlarge', 'ml.g5.2xlarge', 'ml.g5.4xlarge', 'ml.g5.8xlarge', 'ml.g5.16xlarge'] as const;
export type InstanceType = (typeof SINGLE_A10G_INSTANCES)[number];
const MULTI_GPU: Record<string, number> = { 'ml.g5.12xlarge': 4, 'ml.g5.24xlarge': 4, 'ml.g5.48xlarge': 8 };

export const A10G_BYTES = 24e9;
/** The weights may take at most this much of the GPU; the rest is KV cache and activations. */
export const MAX_WEIGHT_BYTES = 20e9;

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

export function weightBytes(parameters: number, quantization: Quantization): number {
  return parameters * (quantization === 'int8' ? 1 : 2);
}

/** Refuses weights that leave no room for the KV cache on one A10G. */
export function checkFits(modelName: string, parameters: number, quantization: Quantization): void {
  const bytes = weightBytes(parameters, quantization);
  if (bytes <= MAX_WEIGHT_BYTES) return;
  const gb = (n: number) => `${(n / 1e9).toFixed(1)} GB`;
  const hint = quantization === 'none' && weightBytes(parameters, 'int8') <= MAX_WEIGHT_BYTES
    ? ' Use 8-bit weights (quantization=int8), as the llama-2-13b-chat preset does.' : '';
  throw new Error(`${modelName} in ${quantization === 'none' ? 'fp16' : quantization} needs ${gb(bytes)} of weights; ` +
    `one A10G has ${gb(A10G_BYTES)} and Gyre keeps at least ${gb(A10G_BYTES - MAX_WEIGHT_BYTES)} for the KV cache ` +
    `and activations, so it cannot be served on one A10G.${hint}`);
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
