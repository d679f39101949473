#!/usr/bin/env node
// The CDK app: one GyreStack from context, checked by cdk-nag's AWS Solutions rules.
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { configFromContext } from '../lib/config';
import { GyreStack } from '../lib/gyre_stack';

const app = new App();
const config = configFromContext(app.node);
new GyreStack(app, config.stackName, {
  config,
  description: `Gyre LLM endpoint (${config.preset}) on Amazon SageMaker`,
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
