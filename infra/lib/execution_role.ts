// The SageMaker execution role of one endpoint, least privilege: read the model prefix, pull the
// image, write the endpoint's logs and metrics; decrypt with the given key only; manage ENIs
// only in a VPC. No managed policies.
import { ArnFormat, Aws, Stack, Token, Validations } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import type { S3Location } from './sizing';

export interface ExecutionRoleProps {
  readonly model: S3Location;
  readonly repository: ecr.IRepository;
  readonly endpointName: string;
  readonly kmsKey?: kms.IKey;
  readonly inVpc: boolean;
}

/** SageMaker's own instance metrics (CPU, GPU, disk) are the only ones the role may publish. */
export const METRICS_NAMESPACE = '/aws/sagemaker/Endpoints';

export class ExecutionRole extends Construct {
  readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: ExecutionRoleProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const { bucket, prefix } = props.model;
    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('sagemaker.amazonaws.com'),
      description: `SageMaker execution role of endpoint ${props.endpointName}: reads s3://${bucket}/${prefix} only`,
    });
    this.role = role;

    const objects = `arn:${Aws.PARTITION}:s3:::${bucket}/${prefix}*`;
    role.addToPolicy(new iam.PolicyStatement({ sid: 'ReadModelPrefix', actions: ['s3:GetObject'], resources: [objects] }));
    role.addToPolicy(new iam.PolicyStatement({
      sid: 'ListModelPrefix',
      actions: ['s3:ListBucket'],
      resources: [`arn:${Aws.PARTITION}:s3:::${bucket}`],
      conditions: { StringLike: { 's3:prefix': [prefix, `${prefix}*`] } },
    }));
    props.repository.grantPull(role);

    const logGroup = stack.formatArn({
      service: 'logs', resource: 'log-group', arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      resourceName: `/aws/sagemaker/Endpoints/${props.endpointName}`,
    });
    role.addToPolicy(new iam.PolicyStatement({
      sid: 'EndpointLogs',
      actions: ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
      resources: [logGroup, `${logGroup}:*`],
    }));
    role.addToPolicy(new iam.PolicyStatement({
      sid: 'EndpointMetrics',
      actions: ['cloudwatch:PutMetricData'],
      resources: ['*'],
      conditions: { StringEquals: { 'cloudwatch:namespace': METRICS_NAMESPACE } },
    }));

    if (props.kmsKey) {
      role.addToPolicy(new iam.PolicyStatement({
        sid: 'DecryptModelObjects',
        actions: ['kms:Decrypt'],
        resources: [props.kmsKey.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `s3.${Aws.REGION}.amazonaws.com` } },
      }));
    }
    if (props.inVpc) {
      role.addToPolicy(new iam.PolicyStatement({
        sid: 'EndpointNetworkInterfaces',
        actions: [
          'ec2:CreateNetworkInterface', 'ec2:CreateNetworkInterfacePermission', 'ec2:DeleteNetworkInterface',
          'ec2:DeleteNetworkInterfacePermission', 'ec2:DescribeNetworkInterfaces', 'ec2:DescribeVpcs',
          'ec2:DescribeDhcpOptions', 'ec2:DescribeSubnets', 'ec2:DescribeSecurityGroups',
        ],
        resources: ['*'],
      }));
    }
    this.acknowledgeWildcards(bucket, prefix, props.endpointName, props.inVpc);
  }

  /** Each wildcard cdk-nag reports, with why it is as narrow as IAM allows. */
  private acknowledgeWildcards(bucket: string, prefix: string, endpointName: string, inVpc: boolean): void {
    const star = [
      'ecr:GetAuthorizationToken does not support resource-level permissions; layers can be pulled only from the one image repository, granted separately.',
      `cloudwatch:PutMetricData does not support resource-level permissions; a condition confines it to the ${METRICS_NAMESPACE} namespace.`,
    ];
    if (inVpc) {
      star.push('In a VPC, SageMaker creates and deletes the endpoint\'s network interfaces in the given subnets; their IDs ' +
        'do not exist before deployment, and the ec2:Describe* actions do not support resource-level permissions.');
    }
    const ack = (finding: string, reason: string) => Validations.of(this.role).acknowledge({ id: `AwsSolutions-IAM5[${finding}]`, reason });
    ack(`Resource::arn:<AWS::Partition>:s3:::${bucket}/${prefix}*`,
      `s3:GetObject covers only the objects under the model prefix s3://${bucket}/${prefix}: SageMaker copies every ` +
      'file there (shards, tokenizer, config) to /opt/ml/model, and their names are not known at deploy time.');
    ack('Resource::*', star.join(' '));
    // cdk-nag names an unresolved region or account by its pseudo parameter.
    const stack = Stack.of(this);
    const region = Token.isUnresolved(stack.region) ? '<AWS::Region>' : stack.region;
    const account = Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account;
    ack(`Resource::arn:<AWS::Partition>:logs:${region}:${account}:log-group:/aws/sagemaker/Endpoints/${endpointName}:*`,
      'SageMaker names the log streams per instance at run time; the wildcard stays inside the log group of this one endpoint.');
  }
}
