// LlmEndpoint: a Gyre container serving one model on one A10G behind a SageMaker real-time
// endpoint, with its least-privilege role, autoscaling, alarms and safe rollouts.
//
//   image (asset | ECR) ─┐
//   s3://bucket/prefix/ ─┴─> CfnModel ─> CfnEndpointConfig ─> CfnEndpoint ─> scaling, alarms
import { Duration, Names } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as sagemaker from 'aws-cdk-lib/aws-sagemaker';
import { Construct } from 'constructs';
import { EndpointAlarms, type EndpointAlarmsProps } from './alarms';
import { EndpointAutoscaling, type AutoscalingOptions } from './autoscaling';
import { ExecutionRole } from './execution_role';
import { resolveImage, type ImageSource } from './image';
import {
  INFERENCE_AMI_VERSION, checkFits, checkInstanceType, checkTimeout, parseS3Uri, type Quantization, type S3Location,
} from './sizing';

export interface LlmEndpointProps {
  /** s3://bucket/prefix/ holding the HF model folder (config.json, *.safetensors, tokenizer). */
  readonly modelS3Uri: string;
  /** 'model-data' (default): SageMaker copies the prefix to /opt/ml/model, uncompressed.
   *  'container': no model data; the container downloads GYRE_MODEL=s3://... itself (needs network). */
  readonly modelLoading?: 'model-data' | 'container';
  /** The model's shape in the engine's table (llama-2-7b, llama-2-13b, mistral-7b, ...), to check
   *  that its weights and one full context fit one A10G. */
  readonly shape: string;
  readonly quantization?: Quantization;             // default 'none' (fp16/bf16 as stored)
  readonly modelLabel?: string;                     // for messages, e.g. 'llama-2-13b-chat'
  readonly image?: ImageSource;                     // default: container/Dockerfile of this checkout
  readonly instanceType?: string;                   // default ml.g5.2xlarge; single-A10G g5 only
  readonly initialInstanceCount?: number;           // default 1
  /** Engine settings (GYRE_* variables); GYRE_MODEL and GYRE_QUANTIZATION are set from the props. */
  readonly environment?: Record<string, string>;
  readonly endpointName?: string;
  readonly modelDataDownloadTimeout?: Duration;     // default 30 min (a 26 GB fp16 13B)
  readonly startupHealthCheckTimeout?: Duration;    // default 20 min
  /** The key that encrypts the model objects in S3 (the role may decrypt through S3 only). */
  readonly kmsKey?: kms.IKey;
  readonly subnets?: ec2.ISubnet[];
  readonly securityGroups?: ec2.ISecurityGroup[];
  /** No network for the container (default: on with 'model-data', which needs none). */
  readonly networkIsolation?: boolean;
  readonly autoscaling?: AutoscalingOptions | false; // default on
  readonly alarms?: Omit<EndpointAlarmsProps, 'endpointName' | 'variantName'> | false; // default on
  /** How updates roll out; with alarms, any alarm during the rollout rolls it back. Default 'rolling'. */
  readonly deployment?: 'rolling' | 'blue-green' | 'none';
}

export const VARIANT_NAME = 'AllTraffic';

export class LlmEndpoint extends Construct {
  readonly endpointName: string;
  readonly role: iam.Role;
  readonly model: sagemaker.CfnModel;
  readonly endpointConfig: sagemaker.CfnEndpointConfig;
  readonly endpoint: sagemaker.CfnEndpoint;
  readonly autoscaling?: EndpointAutoscaling;
  readonly alarms?: EndpointAlarms;
  readonly modelData: S3Location;

  constructor(scope: Construct, id: string, props: LlmEndpointProps) {
    super(scope, id);
    const loading = props.modelLoading ?? 'model-data';
    const quantization = props.quantization ?? 'none';
    const instanceType = checkInstanceType(props.instanceType ?? 'ml.g5.2xlarge');
    const maxModelLen = props.environment?.GYRE_MAX_MODEL_LEN;
    checkFits(props.modelLabel ?? 'the model', props.shape, quantization, maxModelLen ? Number(maxModelLen) : undefined);
    this.modelData = parseS3Uri(props.modelS3Uri);
    const isolation = props.networkIsolation ?? loading === 'model-data';
    if (isolation && loading === 'container') {
      throw new Error("modelLoading 'container' downloads the weights from inside the container, which network isolation forbids; " +
        "use modelLoading 'model-data' (SageMaker copies them) or set networkIsolation: false");
    }
    if (!props.subnets?.length !== !props.securityGroups?.length) {
      throw new Error('a VPC needs both subnets and security groups (or neither)');
    }
    const inVpc = !!props.subnets?.length;
    const download = checkTimeout('modelDataDownloadTimeout', (props.modelDataDownloadTimeout ?? Duration.minutes(30)).toSeconds());
    let startup = checkTimeout('startupHealthCheckTimeout', (props.startupHealthCheckTimeout ?? Duration.minutes(20)).toSeconds());
    // With container loading the download happens before /ping can answer 200.
    if (loading === 'container') startup = Math.min(startup + download, 3600);
    this.endpointName = props.endpointName ?? Names.uniqueResourceName(this, { maxLength: 63, separator: '-' }).toLowerCase();
    if (!/^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/.test(this.endpointName)) {
      throw new Error(`endpoint name '${this.endpointName}' must be 1-63 letters, digits and hyphens, not starting or ending with a hyphen`);
    }

    const image = resolveImage(this, props.image);
    const execution = new ExecutionRole(this, 'Execution', {
      model: this.modelData, repository: image.repository, endpointName: this.endpointName, kmsKey: props.kmsKey, inVpc,
    });
    this.role = execution.role;

    const environment: Record<string, string> = {
      GYRE_BACKEND: 'cuda',  // fail loudly rather than fall back to the CPU on a GPU instance
      ...props.environment,
      GYRE_QUANTIZATION: quantization,
      ...(loading === 'container' ? { GYRE_MODEL: this.modelData.uri } : {}),
    };
    this.model = new sagemaker.CfnModel(this, 'Model', {
      executionRoleArn: this.role.roleArn,
      enableNetworkIsolation: isolation,
      primaryContainer: {
        image: image.imageUri,
        mode: 'SingleModel',
        environment,
        ...(loading === 'model-data'
          ? { modelDataSource: { s3DataSource: { s3Uri: this.modelData.uri, s3DataType: 'S3Prefix', compressionType: 'None' } } }
          : {}),
      },
      vpcConfig: inVpc
        ? { subnets: props.subnets!.map((s) => s.subnetId), securityGroupIds: props.securityGroups!.map((g) => g.securityGroupId) }
        : undefined,
    });
    // The role's policy must exist before SageMaker checks the image and the model data.
    this.model.node.addDependency(this.role);

    this.endpointConfig = new sagemaker.CfnEndpointConfig(this, 'Config', {
      productionVariants: [{
        variantName: VARIANT_NAME,
        modelName: this.model.attrModelName,
        instanceType,
        initialInstanceCount: props.initialInstanceCount ?? 1,
        initialVariantWeight: 1,
        inferenceAmiVersion: INFERENCE_AMI_VERSION,
        containerStartupHealthCheckTimeoutInSeconds: startup,
        modelDataDownloadTimeoutInSeconds: download,
        // No volumeSizeInGb: g5 instances have local NVMe, and SageMaker rejects it for them.
      }],
      // No kmsKeyId either, for the same reason: the NVMe is encrypted by the instance's hardware.
    });
    this.endpointConfig.node.addDependency(this.model);

    if (props.alarms !== false) {
      this.alarms = new EndpointAlarms(this, 'Alarms', { ...props.alarms, endpointName: this.endpointName, variantName: VARIANT_NAME });
    }
    this.endpoint = new sagemaker.CfnEndpoint(this, 'Endpoint', {
      endpointName: this.endpointName,
      endpointConfigName: this.endpointConfig.attrEndpointConfigName,
      deploymentConfig: this.deploymentConfig(props.deployment ?? 'rolling'),
    });
    this.endpoint.node.addDependency(this.endpointConfig);

    if (props.autoscaling !== false) {
      this.autoscaling = new EndpointAutoscaling(this, 'Scaling', {
        ...props.autoscaling, endpointName: this.endpoint.attrEndpointName, variantName: VARIANT_NAME,
      });
    }
  }

  /** ARN of the endpoint (its Ref). */
  get endpointArn(): string {
    return this.endpoint.ref;
  }

  /** Lets `grantee` call InvokeEndpoint and InvokeEndpointWithResponseStream on this endpoint only. */
  grantInvoke(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['sagemaker:InvokeEndpoint', 'sagemaker:InvokeEndpointWithResponseStream'],
      resourceArns: [this.endpointArn],
    });
  }

  private deploymentConfig(kind: 'rolling' | 'blue-green' | 'none'): sagemaker.CfnEndpoint.DeploymentConfigProperty | undefined {
    if (kind === 'none') return undefined;
    const autoRollbackConfiguration = this.alarms
      ? { alarms: this.alarms.all.map((a) => ({ alarmName: a.alarmName })) } : undefined;
    if (kind === 'blue-green') {
      // Full new fleet, all traffic at once, then 10 minutes watching the alarms before the old one goes.
      return {
        blueGreenUpdatePolicy: {
          trafficRoutingConfiguration: { type: 'ALL_AT_ONCE', waitIntervalInSeconds: 600 },
          terminationWaitInSeconds: 600,
          maximumExecutionTimeoutInSeconds: 7200,
        },
        autoRollbackConfiguration,
      };
    }
    // One instance at a time: no second fleet of GPUs, each batch watched for 5 minutes.
    return {
      rollingUpdatePolicy: {
        maximumBatchSize: { type: 'INSTANCE_COUNT', value: 1 },
        rollbackMaximumBatchSize: { type: 'INSTANCE_COUNT', value: 1 },
        waitIntervalInSeconds: 300,
        maximumExecutionTimeoutInSeconds: 7200,
      },
      autoRollbackConfiguration,
    };
  }
}
