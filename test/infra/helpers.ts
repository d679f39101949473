// Builds the Gyre stack from CDK context, as bin/app.ts does, for template and cdk-nag checks.
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { configFromContext, PLACEHOLDER_KEY } from '../../infra/lib/config';
import { GyreStack } from '../../infra/lib/gyre_stack';

export const PLACEHOLDER = 's3://gyre-example-models/llama-2-7b-chat/';
export const ECR_IMAGE = '111122223333.dkr.ecr.us-east-1.amazonaws.com/gyre:1.0';

/** The stack for `-c key=value ...`; imageUri avoids staging the repository as an asset. */
export function stackFor(context: Record<string, unknown> = {}): { app: App; stack: GyreStack } {
  const app = new App({ context: { [PLACEHOLDER_KEY]: PLACEHOLDER, ...context } });
  const config = configFromContext(app.node);
  const stack = new GyreStack(app, config.stackName, { config, env: { account: '111122223333', region: 'us-east-1' } });
  return { app, stack };
}

export function templateFor(context: Record<string, unknown> = {}): Template {
  return Template.fromStack(stackFor({ imageUri: ECR_IMAGE, ...context }).stack);
}

/** Every Allow statement of every IAM policy in the template. */
export function statements(t: Template): { Action: string | string[]; Resource: unknown; Condition?: Record<string, unknown> }[] {
  return Object.values(t.findResources('AWS::IAM::Policy')).flatMap((p) => p.Properties.PolicyDocument.Statement);
}

/** A resource value as text, with Fn::Join flattened ({"Ref": "AWS::Partition"} -> "${AWS::Partition}"). */
export function flat(v: unknown): string {
  if (typeof v === 'string') return v;
  const o = v as Record<string, unknown>;
  if (o && 'Fn::Join' in o) {
    const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
    return parts.map(flat).join(sep);
  }
  if (o && 'Ref' in o) return `\${${String(o.Ref)}}`;
  if (o && 'Fn::Sub' in o) return String(o['Fn::Sub']);
  return JSON.stringify(v);
}
