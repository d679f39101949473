// CloudWatch alarms on one variant's invocation metrics (AWS/SageMaker). They also gate
// deployments: an update that sets one off is rolled back.
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';

export interface EndpointAlarmsProps {
  readonly endpointName: string;
  readonly variantName: string;
  /** 5xx answers from the container per minute that count as failing (default 5). */
  readonly modelErrorsPerMinute?: number;
  /** p90 of ModelLatency that counts as too slow (default 40 s, under the 60 s invocation limit). */
  readonly latencyP90?: Duration;
}

export class EndpointAlarms extends Construct {
  readonly modelErrors: cloudwatch.Alarm;
  readonly latency: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: EndpointAlarmsProps) {
    super(scope, id);
    const metric = (metricName: string, statistic: string) => new cloudwatch.Metric({
      namespace: 'AWS/SageMaker', metricName, statistic, period: Duration.minutes(1),
      dimensionsMap: { EndpointName: props.endpointName, VariantName: props.variantName },
    });
    const latency = props.latencyP90 ?? Duration.seconds(40);
    // Two bad minutes out of three: one burst does not page anyone or roll back a deployment.
    this.modelErrors = metric('Invocation5XXErrors', 'Sum').createAlarm(this, 'ModelErrors', {
      alarmDescription: `${props.endpointName}: the model container answered 5xx to invocations`,
      threshold: props.modelErrorsPerMinute ?? 5,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 3, datapointsToAlarm: 2,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    // ModelLatency is in microseconds.
    this.latency = metric('ModelLatency', 'p90').createAlarm(this, 'Latency', {
      alarmDescription: `${props.endpointName}: p90 model latency above ${latency.toSeconds()} s`,
      threshold: latency.toMilliseconds() * 1000,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 5, datapointsToAlarm: 3,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }

  get all(): cloudwatch.Alarm[] {
    return [this.modelErrors, this.latency];
  }
}
