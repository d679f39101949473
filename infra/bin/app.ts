#!/usr/bin/env node
// The CDK app: one GyreStack from context, checked by cdk-nag's AWS Solutions rules.
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { configFromContext } from '../lib/config';
import { GyreStack } from '../lib/gyre_stack';

const app = new App();
try {
  const config = configFromContext(app.node);
  new GyreStack(app, config.stackName, {
    config,
    description: `Gyre LLM endpoint (${config.preset}) on Amazon SageMaker`,
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  });
} catch (e) {
  // A refusal (bad context, a model that does not fit) is a sentence for the user, not a stack
  // trace; GYRE_DEBUG=1 shows the stack.
  process.stderr.write(`gyre: ${process.env.GYRE_DEBUG === '1' ? (e as Error).stack : (e as Error).message}\n`);
  process.exit(1);
}
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
