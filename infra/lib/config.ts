// The stack's settings from CDK context (`cdk deploy -c preset=mistral-7b-instruct -c modelS3Uri=...`
// or cdk.json). Values from -c arrive as strings; cdk.json may hold JSON values.
import type { Node } from 'constructs';
import { DEFAULT_PRESET, preset, type PresetName } from './presets';
import { type Quantization, shapeNames } from './sizing';

export interface GyreConfig {
  readonly preset: PresetName;
  readonly modelS3Uri: string;
  readonly usesPlaceholder: boolean;
  readonly stackName: string;
  readonly endpointName: string;
  readonly instanceType?: string;
  readonly quantization?: Quantization;
  readonly shape?: string;
  readonly modelLoading?: 'model-data' | 'container';
  readonly imageUri?: string;
  readonly maxModelLen?: number;
  readonly maxInputTokens?: number;
  readonly maxBatchTokens?: number;
  readonly autoscaling: boolean;
  readonly minInstances?: number;
  readonly maxInstances?: number;
  readonly targetConcurrentRequests?: number;
  readonly alarms: boolean;
  readonly deployment?: 'rolling' | 'blue-green' | 'none';
  readonly kmsKeyArn?: string;
  readonly subnetIds?: string[];
  readonly securityGroupIds?: string[];
  readonly networkIsolation?: boolean;
}

/** cdk.json keeps this so that `cdk synth` with no context shows a template at once. */
export const PLACEHOLDER_KEY = 'gyre:placeholderModelS3Uri';

type Get = (key: string) => unknown;

function str(get: Get, key: string): string | undefined {
  const v = get(key);
  if (v === undefined || v === null || v === '') return undefined;
  return String(v);
}

function num(get: Get, key: string): number | undefined {
  const v = str(get, key);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`context ${key} must be a positive number, got '${v}'`);
  return n;
}

function bool(get: Get, key: string): boolean | undefined {
  const v = str(get, key);
  if (v === undefined) return undefined;
  if (v === 'true' || v === 'false') return v === 'true';
  throw new Error(`context ${key} must be true or false, got '${v}'`);
}

function oneOf<T extends string>(get: Get, key: string, choices: readonly T[]): T | undefined {
  const v = str(get, key);
  if (v !== undefined && !choices.includes(v as T)) throw new Error(`context ${key} must be one of ${choices.join(', ')}, got '${v}'`);
  return v as T | undefined;
}

/** -c shape: a shape of the engine's table; -c parameters (a parameter count) sized models before it. */
function shapeOf(get: Get): string | undefined {
  if (str(get, 'parameters') !== undefined) {
    throw new Error(`context parameters is no longer read: give the model's shape instead, -c shape=<one of ${shapeNames().join(', ')}>`);
  }
  return oneOf(get, 'shape', shapeNames());
}

function list(get: Get, key: string): string[] | undefined {
  const v = get(key);
  if (Array.isArray(v)) return v.map(String);
  return str(get, key)?.split(',').map((s) => s.trim()).filter(Boolean);
}

export function configFromContext(node: Pick<Node, 'tryGetContext'>): GyreConfig {
  const get: Get = (k) => node.tryGetContext(k);
  const name = str(get, 'preset') ?? DEFAULT_PRESET;
  preset(name);  // refuses unknown names
  const given = str(get, 'modelS3Uri');
  const placeholder = str(get, PLACEHOLDER_KEY);
  if (!given && name === 'byo') throw new Error('preset byo needs the model: -c modelS3Uri=s3://bucket/prefix/');
  if (!given && !placeholder) throw new Error(`no model: pass -c modelS3Uri=s3://bucket/prefix/ (or keep ${PLACEHOLDER_KEY} in cdk.json)`);
  const stackName = str(get, 'stackName') ?? `Gyre-${name}`;
  return {
    preset: name as PresetName,
    modelS3Uri: given ?? placeholder!,
    usesPlaceholder: !given,
    stackName,
    endpointName: str(get, 'endpointName') ?? stackName.toLowerCase(),
    instanceType: str(get, 'instanceType'),
    quantization: oneOf(get, 'quantization', ['none', 'int8'] as const),
    shape: shapeOf(get),
    modelLoading: oneOf(get, 'modelLoading', ['model-data', 'container'] as const),
    imageUri: str(get, 'imageUri'),
    maxModelLen: num(get, 'maxModelLen'),
    maxInputTokens: num(get, 'maxInputTokens'),
    maxBatchTokens: num(get, 'maxBatchTokens'),
    autoscaling: bool(get, 'autoscaling') ?? true,
    minInstances: num(get, 'minInstances'),
    maxInstances: num(get, 'maxInstances'),
    targetConcurrentRequests: num(get, 'targetConcurrentRequests'),
    alarms: bool(get, 'alarms') ?? true,
    deployment: oneOf(get, 'deployment', ['rolling', 'blue-green', 'none'] as const),
    kmsKeyArn: str(get, 'kmsKeyArn'),
    subnetIds: list(get, 'subnetIds'),
    securityGroupIds: list(get, 'securityGroupIds'),
    networkIsolation: bool(get, 'networkIsolation'),
  };
}
