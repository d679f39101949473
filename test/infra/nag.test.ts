// cdk-nag's AWS Solutions rules pass, with every acknowledgement carrying a reason.
import { App, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { stackFor, ECR_IMAGE } from './helpers';

const KEY = 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const VPC = { subnetIds: 'subnet-0123456789abcdef0,subnet-0fedcba9876543210', securityGroupIds: 'sg-0123456789abcdef0' };

function violations(app: App): string[] {
  app.synth();
  const report = new AwsSolutionsChecks().validateScope(app);
  return report.violations.map((v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.locations?.join(',') ?? r.resourceLogicalId).join('; ')}`);
}

function acknowledgements(scope: IConstruct): { id: string; reason: string }[] {
  return scope.node.findAll().flatMap((c) => c.node.metadata
    .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
    .flatMap((m) => Object.entries(m.data as Record<string, string>).map(([id, reason]) => ({ id: id.replace(/^\w+::/, ''), reason }))));
}

const configs: [string, Record<string, unknown>][] = [
  ['default (image asset, placeholder model)', {}],
  ['llama-2-13b-chat', { preset: 'llama-2-13b-chat', modelS3Uri: 's3://acme-models/llama-2-13b-chat/', imageUri: ECR_IMAGE }],
  ['mistral-7b-instruct', { preset: 'mistral-7b-instruct', modelS3Uri: 's3://acme-models/mistral/', imageUri: ECR_IMAGE }],
  ['byo with KMS and a VPC', { preset: 'byo', modelS3Uri: 's3://acme-models/ft/', imageUri: ECR_IMAGE, kmsKeyArn: KEY, ...VPC }],
  ['container loading in a VPC, blue/green', {
    modelS3Uri: 's3://acme-models/x/', imageUri: ECR_IMAGE, modelLoading: 'container', networkIsolation: 'false', deployment: 'blue-green', ...VPC,
  }],
];

test.each(configs)('AwsSolutionsChecks: no errors for %s', (_name, ctx) => {
  const { app } = stackFor(ctx);
  expect(violations(app)).toEqual([]);
});

test('every acknowledgement names its rule and gives a reason of substance', () => {
  const { stack } = stackFor({ preset: 'byo', modelS3Uri: 's3://acme-models/ft/', kmsKeyArn: KEY, ...VPC });
  const acks = acknowledgements(stack);
  expect(acks.map((a) => a.id.replace(/\[.*$/, ''))).toEqual(['AwsSolutions-IAM5', 'AwsSolutions-IAM5', 'AwsSolutions-IAM5']);
  for (const a of acks) expect(a.reason.length).toBeGreaterThan(80);
  expect(acks.map((a) => a.id)).toEqual([
    'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::acme-models/ft/*]',
    'AwsSolutions-IAM5[Resource::*]',
    'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:us-east-1:111122223333:log-group:/aws/sagemaker/Endpoints/gyre-byo:*]',
  ]);
  // In a VPC the reason for Resource::* also covers the network interfaces.
  expect(acks[1].reason).toMatch(/network interfaces/);
});

test('a wildcard beyond the model prefix would be reported', () => {
  const { app, stack } = stackFor({ modelS3Uri: 's3://acme-models/x/', imageUri: ECR_IMAGE });
  stack.llm.role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: ['arn:aws:s3:::acme-models/*'] }));
  expect(violations(app).join('\n')).toMatch(/AwsSolutions-IAM5\[Resource::arn:aws:s3:::acme-models\/\*\]/);
});
