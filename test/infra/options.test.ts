// LlmEndpoint's options, and the combinations refused at synth time.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { LlmEndpoint } from '../../infra/lib/llm_endpoint';
import { ECR_IMAGE, flat, stackFor, statements, templateFor } from './helpers';

const KEY = 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const VPC = { subnetIds: 'subnet-0123456789abcdef0,subnet-0fedcba9876543210', securityGroupIds: 'sg-0123456789abcdef0' };
const URI = 's3://acme-models/llama-2-7b-chat/';

describe('synth-time refusals', () => {
  const refused = (ctx: Record<string, unknown>) => () => stackFor({ imageUri: ECR_IMAGE, modelS3Uri: URI, ...ctx });

  test('13B in fp16 on one A10G', () => {
    expect(refused({ preset: 'llama-2-13b-chat', quantization: 'none' }))
      .toThrow(/llama-2-13b-chat \(llama-2-13b\) in fp16 needs 26\.0 GB of weights; one A10G has 24\.1 GB, Gyre's budget is 21\.7 GB.*the KV cache has nothing.*cannot be served on one A10G\. Use 8-bit weights/);
    expect(refused({ preset: 'byo', shape: 'llama-2-13b' })).toThrow(/fp16 needs 26\.0 GB/);
    expect(refused({ preset: 'byo', shape: 'llama-2-13b', quantization: 'int8' })).not.toThrow();
    expect(refused({ preset: 'byo', shape: 'llama-3-8b' })).toThrow(/context shape must be one of tiny, 100m, llama-2-7b, llama-2-13b, mistral-7b, got 'llama-3-8b'/);
    expect(refused({ preset: 'byo', parameters: '13e9' })).toThrow(/context parameters is no longer read: give the model's shape instead, -c shape=/);
    // A context longer than the pool holds: 7B fp16 leaves ~13k KV tokens.
    expect(refused({ preset: 'llama-2-7b-chat', maxModelLen: '65536' })).toThrow(/less than one 65536-token context/);
    expect(refused({ preset: 'llama-2-13b-chat' })).not.toThrow();  // int8: 13 GB
  });

  test('an instance that is not a single-A10G g5 size', () => {
    expect(refused({ instanceType: 'ml.g5.12xlarge' })).toThrow(/ml\.g5\.12xlarge has 4 A10G GPUs; Gyre serves one model on one GPU/);
    expect(refused({ instanceType: 'ml.g5.48xlarge' })).toThrow(/has 8 A10G GPUs/);
    expect(refused({ instanceType: 'ml.p4d.24xlarge' })).toThrow(/ml\.p4d\.24xlarge is not a single-A10G ml\.g5 instance/);
    expect(refused({ instanceType: 'ml.g6.xlarge' })).toThrow(/not a single-A10G/);
    for (const ok of ['ml.g5.xlarge', 'ml.g5.4xlarge', 'ml.g5.16xlarge']) expect(refused({ instanceType: ok })).not.toThrow();
  });

  test('bad model locations and settings', () => {
    expect(() => stackFor({ preset: 'byo' })).toThrow(/preset byo needs the model: -c modelS3Uri=s3:\/\/bucket\/prefix\//);
    expect(refused({ modelS3Uri: 'https://acme-models.s3.amazonaws.com/x/' })).toThrow(/must look like s3:\/\/bucket\/prefix\//);
    expect(refused({ modelS3Uri: 's3://acme-models/' })).toThrow(/not the bucket root/);
    expect(refused({ preset: 'llama-3-70b' })).toThrow(/unknown preset 'llama-3-70b'; choose one of: llama-2-7b-chat, llama-2-13b-chat/);
    expect(refused({ modelLoading: 'container', networkIsolation: 'true' })).toThrow(/network isolation forbids/);
    expect(refused({ imageUri: 'docker.io/library/gyre:latest' })).toThrow(/must be an ECR image/);
    expect(refused({ subnetIds: 'subnet-0123456789abcdef0' })).toThrow(/both subnets and security groups/);
    expect(refused({ autoscaling: 'yes' })).toThrow(/autoscaling must be true or false/);
    expect(refused({ minInstances: '3', maxInstances: '2' })).toThrow(/1 <= minInstances <= maxInstances/);
  });
});

test('a prefix without its trailing slash gets one (S3Prefix model data expects a folder)', () => {
  templateFor({ modelS3Uri: 's3://acme-models/llama' }).hasResourceProperties('AWS::SageMaker::Model', {
    PrimaryContainer: { ModelDataSource: { S3DataSource: { S3Uri: 's3://acme-models/llama/' } } },
  });
});

test('KMS: kms:Decrypt on that key only, through S3 only', () => {
  expect(statements(templateFor({ modelS3Uri: URI })).flatMap((s) => [s.Action].flat()).filter((a) => a.startsWith('kms:'))).toEqual([]);
  const kms = statements(templateFor({ modelS3Uri: URI, kmsKeyArn: KEY })).filter((s) => [s.Action].flat().some((a) => a.startsWith('kms:')));
  expect(kms).toEqual([expect.objectContaining({
    Action: 'kms:Decrypt', Resource: KEY, Condition: { StringEquals: { 'kms:ViaService': { 'Fn::Join': ['', ['s3.', { Ref: 'AWS::Region' }, '.amazonaws.com']] } } },
  })]);
});

test('VPC: subnets and security groups on the model, still network-isolated, ENI permissions for SageMaker', () => {
  const t = templateFor({ modelS3Uri: URI, ...VPC });
  t.hasResourceProperties('AWS::SageMaker::Model', {
    EnableNetworkIsolation: true,
    VpcConfig: { Subnets: VPC.subnetIds.split(','), SecurityGroupIds: [VPC.securityGroupIds] },
  });
  expect(statements(t).flatMap((s) => [s.Action].flat())).toContain('ec2:CreateNetworkInterface');
  expect(statements(templateFor({ modelS3Uri: URI })).flatMap((s) => [s.Action].flat()).some((a) => a.startsWith('ec2:'))).toBe(false);
});

test("modelLoading 'container': no model data, GYRE_MODEL=s3://..., the download counted in the startup timeout", () => {
  const t = templateFor({ modelS3Uri: URI, modelLoading: 'container' });  // isolation defaults to off here
  t.hasResourceProperties('AWS::SageMaker::Model', {
    EnableNetworkIsolation: false,
    PrimaryContainer: { ModelDataSource: Match.absent(), Environment: { GYRE_MODEL: URI } },
  });
  t.hasResourceProperties('AWS::SageMaker::EndpointConfig', { ProductionVariants: [{ ContainerStartupHealthCheckTimeoutInSeconds: 600 + 900 }] });
});

test('blue/green deployment with auto-rollback; none; autoscaling and alarms can be turned off', () => {
  templateFor({ modelS3Uri: URI, deployment: 'blue-green' }).hasResourceProperties('AWS::SageMaker::Endpoint', {
    DeploymentConfig: {
      BlueGreenUpdatePolicy: { TrafficRoutingConfiguration: { Type: 'ALL_AT_ONCE' } },
      RollingUpdatePolicy: Match.absent(),
      AutoRollbackConfiguration: { Alarms: Match.arrayWith([Match.objectLike({ AlarmName: Match.anyValue() })]) },
    },
  });
  templateFor({ modelS3Uri: URI, deployment: 'none' }).hasResourceProperties('AWS::SageMaker::Endpoint', { DeploymentConfig: Match.absent() });
  const bare = templateFor({ modelS3Uri: URI, autoscaling: 'false', alarms: 'false' });
  bare.resourceCountIs('AWS::ApplicationAutoScaling::ScalableTarget', 0);
  bare.resourceCountIs('AWS::CloudWatch::Alarm', 0);
  bare.hasResourceProperties('AWS::SageMaker::Endpoint', { DeploymentConfig: { AutoRollbackConfiguration: Match.absent() } });
  templateFor({ modelS3Uri: URI, minInstances: '2', maxInstances: '6' })
    .hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: 2, MaxCapacity: 6 });
});

test('grantInvoke: both invoke actions, on this endpoint only', () => {
  const stack = new Stack(new App(), 'S', { env: { account: '111122223333', region: 'us-east-1' } });
  const llm = new LlmEndpoint(stack, 'Llm', { modelS3Uri: URI, shape: 'llama-2-7b', image: { uri: ECR_IMAGE }, endpointName: 'chat' });
  const caller = new iam.Role(stack, 'Caller', { assumedBy: new iam.AccountRootPrincipal() });
  llm.grantInvoke(caller);
  const t = Template.fromStack(stack);
  const endpointId = Object.keys(t.findResources('AWS::SageMaker::Endpoint'))[0];
  t.hasResourceProperties('AWS::IAM::Policy', {
    Roles: [{ Ref: Match.stringLikeRegexp('^Caller') }],
    PolicyDocument: { Statement: [{ Action: ['sagemaker:InvokeEndpoint', 'sagemaker:InvokeEndpointWithResponseStream'], Resource: { Ref: endpointId } }] },
  });
});

test('the image asset: container/Dockerfile, linux/amd64, staged without dependencies, builds or tests', () => {
  const { app, stack } = stackFor({ modelS3Uri: URI });
  const asm = app.synth();
  const manifest = JSON.parse(fs.readFileSync(path.join(asm.directory, `${stack.stackName}.assets.json`), 'utf8'));
  const images = Object.values(manifest.dockerImages) as { source: { directory: string; dockerFile: string; platform: string } }[];
  expect(images).toHaveLength(1);
  expect(images[0].source).toMatchObject({ dockerFile: 'container/Dockerfile', platform: 'linux/amd64' });
  const staged = path.join(asm.directory, images[0].source.directory);
  for (const kept of ['container/Dockerfile', 'package.json', 'package-lock.json', 'src', 'native/CMakeLists.txt', 'models/chat-templates']) {
    expect(fs.existsSync(path.join(staged, kept))).toBe(true);
  }
  for (const left of ['node_modules', 'native/build', 'dist', 'infra', 'test', 'models/demo', '.git']) {
    expect(fs.existsSync(path.join(staged, left))).toBe(false);
  }
  const image = Template.fromStack(stack).findResources('AWS::SageMaker::Model');
  expect(flat(Object.values(image)[0].Properties.PrimaryContainer.Image)).toMatch(/container-assets.*:[0-9a-f]{64}$/);
});
