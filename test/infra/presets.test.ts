// The synthesized template of each preset: resources, model data, variant, role, scaling, alarms.
import { Match } from 'aws-cdk-lib/assertions';
import { PRESETS } from '../../infra/lib/presets';
import { INFERENCE_AMI_VERSION } from '../../infra/lib/sizing';
import { flat, statements, templateFor } from './helpers';

const cases = [
  { preset: 'llama-2-7b-chat', uri: 's3://acme-models/llama-2-7b-chat/', quantization: 'none', download: 900, startup: 600, maxLen: '4096' },
  { preset: 'llama-2-13b-chat', uri: 's3://acme-models/llama-2-13b-chat/', quantization: 'int8', download: 1800, startup: 1200, maxLen: '4096' },
  { preset: 'mistral-7b-instruct', uri: 's3://acme-models/mistral-7b-instruct/', quantization: 'none', download: 900, startup: 600, maxLen: '8192' },
  { preset: 'byo', uri: 's3://acme-models/fine-tunes/support-bot-v3/', quantization: 'none', download: 900, startup: 600, maxLen: undefined },
] as const;

test('every preset is covered here', () => {
  expect(cases.map((c) => c.preset).sort()).toEqual(Object.keys(PRESETS).sort());
});

describe.each(cases)('preset $preset', (c) => {
  const t = templateFor({ preset: c.preset, modelS3Uri: c.uri });
  const bucket = 'acme-models';
  const prefix = c.uri.slice(`s3://${bucket}/`.length);

  test('resource counts', () => {
    const counts: Record<string, number> = {
      'AWS::SageMaker::Model': 1, 'AWS::SageMaker::EndpointConfig': 1, 'AWS::SageMaker::Endpoint': 1,
      'AWS::IAM::Role': 1, 'AWS::IAM::Policy': 1,
      'AWS::ApplicationAutoScaling::ScalableTarget': 1, 'AWS::ApplicationAutoScaling::ScalingPolicy': 1,
      'AWS::CloudWatch::Alarm': 2,
    };
    for (const [type, n] of Object.entries(counts)) t.resourceCountIs(type, n);
    const types = new Set(Object.values(t.toJSON().Resources as Record<string, { Type: string }>).map((r) => r.Type));
    types.delete('AWS::CDK::Metadata');
    expect([...types].sort()).toEqual(Object.keys(counts).sort());
  });

  test('the model is the S3 prefix as uncompressed ModelDataSource, with network isolation and the engine settings', () => {
    t.hasResourceProperties('AWS::SageMaker::Model', {
      EnableNetworkIsolation: true,
      PrimaryContainer: {
        Image: '111122223333.dkr.ecr.us-east-1.amazonaws.com/gyre:1.0',
        ModelDataSource: { S3DataSource: { S3Uri: c.uri, S3DataType: 'S3Prefix', CompressionType: 'None' } },
        ModelDataUrl: Match.absent(),
        Environment: {
          GYRE_BACKEND: 'cuda',
          GYRE_QUANTIZATION: c.quantization,
          GYRE_MAX_MODEL_LEN: c.maxLen ?? Match.absent(),
          GYRE_MODEL: Match.absent(),
        },
      },
    });
  });

  test('the variant: single-A10G g5, pinned AMI, timeouts of the preset, no VolumeSizeInGB', () => {
    t.hasResourceProperties('AWS::SageMaker::EndpointConfig', {
      ProductionVariants: [{
        InstanceType: 'ml.g5.2xlarge',
        InitialInstanceCount: 1,
        InferenceAmiVersion: INFERENCE_AMI_VERSION,
        ModelDataDownloadTimeoutInSeconds: c.download,
        ContainerStartupHealthCheckTimeoutInSeconds: c.startup,
        VolumeSizeInGB: Match.absent(),
      }],
      KmsKeyId: Match.absent(),
    });
  });

  test('model -> config -> endpoint is an explicit chain', () => {
    const r = t.toJSON().Resources as Record<string, { Type: string; DependsOn?: string[] }>;
    const id = (type: string) => Object.keys(r).find((k) => r[k].Type === type)!;
    expect(r[id('AWS::SageMaker::EndpointConfig')].DependsOn).toContain(id('AWS::SageMaker::Model'));
    expect(r[id('AWS::SageMaker::Endpoint')].DependsOn).toContain(id('AWS::SageMaker::EndpointConfig'));
    expect(r[id('AWS::SageMaker::Model')].DependsOn).toContain(id('AWS::IAM::Policy'));
  });

  test('the role reads only the model prefix, has no wildcard S3 resource and no managed policy', () => {
    t.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: { Statement: [{ Principal: { Service: 'sagemaker.amazonaws.com' } }] },
      ManagedPolicyArns: Match.absent(),
    });
    const all = statements(t);
    const actions = all.flatMap((s) => [s.Action].flat());
    expect(actions.filter((a) => a.endsWith('*'))).toEqual([]);
    expect(actions.filter((a) => a.startsWith('s3:')).sort()).toEqual(['s3:GetObject', 's3:ListBucket']);
    expect(actions.some((a) => a.startsWith('kms:') || a.startsWith('ec2:'))).toBe(false);
    const get = all.find((s) => s.Action === 's3:GetObject')!;
    expect([get.Resource].flat().map(flat)).toEqual([`arn:\${AWS::Partition}:s3:::${bucket}/${prefix}*`]);
    const list = all.find((s) => s.Action === 's3:ListBucket')!;
    expect([list.Resource].flat().map(flat)).toEqual([`arn:\${AWS::Partition}:s3:::${bucket}`]);
    expect(list.Condition).toEqual({ StringLike: { 's3:prefix': [prefix, `${prefix}*`] } });
    // "*" only where IAM has no resource-level permissions.
    for (const s of all.filter((x) => [x.Resource].flat().includes('*'))) {
      expect([s.Action].flat().every((a) => a === 'ecr:GetAuthorizationToken' || a === 'cloudwatch:PutMetricData')).toBe(true);
    }
    const ecr = all.find((s) => [s.Action].flat().includes('ecr:BatchGetImage'))!;
    expect(flat(ecr.Resource)).toMatch(/:ecr:us-east-1:111122223333:repository\/gyre$/);
  });

  test('autoscaling on concurrent requests, with a scale-in cooldown', () => {
    t.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      ServiceNamespace: 'sagemaker',
      ScalableDimension: 'sagemaker:variant:DesiredInstanceCount',
      MinCapacity: 1,
      MaxCapacity: 4,
      RoleARN: Match.absent(),
    });
    const target = Object.values(t.findResources('AWS::ApplicationAutoScaling::ScalableTarget'))[0];
    expect(flat(target.Properties.ResourceId)).toMatch(/^endpoint\/.*\/variant\/AllTraffic$/);
    expect(JSON.stringify(target.Properties.ResourceId)).toMatch(/EndpointName/);  // a reference: created after the endpoint
    t.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingScalingPolicyConfiguration: {
        PredefinedMetricSpecification: { PredefinedMetricType: 'SageMakerVariantConcurrentRequestsPerModelHighResolution' },
        ScaleInCooldown: Match.anyValue(),
      },
    });
    const policy = Object.values(t.findResources('AWS::ApplicationAutoScaling::ScalingPolicy'))[0];
    expect(policy.Properties.TargetTrackingScalingPolicyConfiguration.ScaleInCooldown).toBeGreaterThanOrEqual(300);
  });

  test('alarms on model errors and latency gate a rolling deployment', () => {
    const name = `gyre-${c.preset}`;
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/SageMaker', MetricName: 'Invocation5XXErrors',
      Dimensions: Match.arrayWith([{ Name: 'EndpointName', Value: name }, { Name: 'VariantName', Value: 'AllTraffic' }]),
    });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { Namespace: 'AWS/SageMaker', MetricName: 'ModelLatency', ExtendedStatistic: 'p90' });
    const alarms = Object.keys(t.findResources('AWS::CloudWatch::Alarm'));
    t.hasResourceProperties('AWS::SageMaker::Endpoint', {
      EndpointName: name,
      DeploymentConfig: {
        RollingUpdatePolicy: { MaximumBatchSize: { Type: 'INSTANCE_COUNT', Value: 1 } },
        AutoRollbackConfiguration: { Alarms: alarms.map((id) => ({ AlarmName: { Ref: id } })) },
      },
    });
  });

  test('outputs the endpoint name and the role ARN', () => {
    t.hasOutput('EndpointName', {});
    t.hasOutput('RoleArn', { Value: { 'Fn::GetAtt': [Match.stringLikeRegexp('Role'), 'Arn'] } });
  });
});
