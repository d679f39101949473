// One Gyre endpoint for one model preset (or a BYO model), configured by GyreConfig.
import { Annotations, CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import type { GyreConfig } from './config';
import type { ImageSource } from './image';
import { LlmEndpoint } from './llm_endpoint';
import { preset } from './presets';

export interface GyreStackProps extends StackProps {
  readonly config: GyreConfig;
  /** Overrides the image (tests stage a small directory); default: imageUri, else this checkout. */
  readonly image?: ImageSource;
}

export class GyreStack extends Stack {
  readonly llm: LlmEndpoint;

  constructor(scope: Construct, id: string, props: GyreStackProps) {
    super(scope, id, props);
    const c = props.config;
    const p = preset(c.preset);
    const engine: Record<string, string> = {};
    const limits = { GYRE_MAX_MODEL_LEN: c.maxModelLen ?? p.maxModelLen, GYRE_MAX_INPUT_TOKENS: c.maxInputTokens ?? p.maxInputTokens,
      GYRE_MAX_BATCH_TOKENS: c.maxBatchTokens ?? p.maxBatchTokens };
    for (const [k, v] of Object.entries(limits)) if (v !== undefined) engine[k] = String(v);
    const subnets = c.subnetIds?.map((id, i) => ec2.Subnet.fromSubnetId(this, `Subnet${i}`, id));
    const securityGroups = c.securityGroupIds?.map((id, i) => ec2.SecurityGroup.fromSecurityGroupId(this, `SecurityGroup${i}`, id));

    this.llm = new LlmEndpoint(this, 'Llm', {
      modelS3Uri: c.modelS3Uri,
      modelLoading: c.modelLoading,
      modelLabel: c.preset,
      shape: c.shape ?? p.shape,
      quantization: c.quantization ?? p.quantization,
      instanceType: c.instanceType ?? p.instanceType,
      image: props.image ?? (c.imageUri ? { uri: c.imageUri } : undefined),
      environment: engine,
      endpointName: c.endpointName,
      modelDataDownloadTimeout: Duration.seconds(p.modelDataDownloadTimeoutS),
      startupHealthCheckTimeout: Duration.seconds(p.startupHealthCheckTimeoutS),
      kmsKey: c.kmsKeyArn ? kms.Key.fromKeyArn(this, 'ModelKey', c.kmsKeyArn) : undefined,
      subnets,
      securityGroups,
      networkIsolation: c.networkIsolation,
      autoscaling: c.autoscaling
        ? { minInstances: c.minInstances, maxInstances: c.maxInstances, targetConcurrentRequests: c.targetConcurrentRequests }
        : false,
      alarms: c.alarms ? {} : false,
      deployment: c.deployment,
    });
    if (c.usesPlaceholder) {
      Annotations.of(this).addWarningV2('gyre:placeholderModel', `No -c modelS3Uri: using the placeholder ${c.modelS3Uri}. ` +
        'Fine for synth; a deployment would fail to copy the model. Pass -c modelS3Uri=s3://your-bucket/your-prefix/.');
    }

    new CfnOutput(this, 'EndpointName', { value: this.llm.endpoint.attrEndpointName, description: 'gyre invoke --endpoint <this>' });
    new CfnOutput(this, 'RoleArn', { value: this.llm.role.roleArn, description: 'SageMaker execution role of the endpoint' });
    new CfnOutput(this, 'ModelData', { value: this.llm.modelData.uri, description: 'weights served' });
  }
}
