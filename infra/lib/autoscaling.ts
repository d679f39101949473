// Target tracking on queued + running requests per instance, sampled every 10 s
// (SageMakerVariantConcurrentRequestsPerModelHighResolution): an LLM's load is the number of
// sequences in flight, not invocations per minute.
import { Duration } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import { Construct } from 'constructs';

export interface AutoscalingOptions {
  readonly minInstances?: number;           // default 1
  readonly maxInstances?: number;           // default 4
  /** Concurrent requests per instance to hold (default 32: batched decoding stays efficient). */
  readonly targetConcurrentRequests?: number;
  /** Quiet time after a scale-in before the next (default 10 min: a new instance takes minutes). */
  readonly scaleInCooldown?: Duration;
  readonly scaleOutCooldown?: Duration;     // default 2 min
}

export interface EndpointAutoscalingProps extends AutoscalingOptions {
  readonly endpointName: string;            // a reference to the endpoint, so it is created first
  readonly variantName: string;
}

export const CONCURRENCY_METRIC = 'SageMakerVariantConcurrentRequestsPerModelHighResolution';

export class EndpointAutoscaling extends Construct {
  readonly target: appscaling.CfnScalableTarget;
  readonly policy: appscaling.CfnScalingPolicy;

  constructor(scope: Construct, id: string, props: EndpointAutoscalingProps) {
    super(scope, id);
    const min = props.minInstances ?? 1;
    const max = props.maxInstances ?? 4;
    if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max < min) {
      throw new Error(`autoscaling needs whole numbers 1 <= minInstances <= maxInstances, got ${min} and ${max}`);
    }
    // No RoleARN: Application Auto Scaling uses its SageMaker service-linked role.
    this.target = new appscaling.CfnScalableTarget(this, 'Target', {
      serviceNamespace: 'sagemaker',
      resourceId: `endpoint/${props.endpointName}/variant/${props.variantName}`,
      scalableDimension: 'sagemaker:variant:DesiredInstanceCount',
      minCapacity: min,
      maxCapacity: max,
    });
    this.policy = new appscaling.CfnScalingPolicy(this, 'Policy', {
      policyName: 'gyre-concurrent-requests',
      policyType: 'TargetTrackingScaling',
      scalingTargetId: this.target.ref,
      targetTrackingScalingPolicyConfiguration: {
        predefinedMetricSpecification: { predefinedMetricType: CONCURRENCY_METRIC },
        targetValue: props.targetConcurrentRequests ?? 32,
        scaleInCooldown: (props.scaleInCooldown ?? Duration.minutes(10)).toSeconds(),
        scaleOutCooldown: (props.scaleOutCooldown ?? Duration.minutes(2)).toSeconds(),
      },
    });
  }
}
