// The CDK app (infra/) from a notebook. `cdk synth` and `cdk deploy` build bin/app.ts; here the
// same GyreStack is built in-process from the same context (cdk.json's, then ours), so the
// template shown is the one `cdk deploy` would send. infra/ is compiled into .build/infra (tslab
// only compiles TypeScript under the notebook's folder).
import * as child_process from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ROOT, scratch } from './local';

export const INFRA = path.join(ROOT, 'infra');
const OUT = path.join(ROOT, 'notebooks-ts', '.build', 'infra');

function newest(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
  }
  return t;
}

/** Transpiles infra/ (no type check: its own build and tests do that) unless .build/infra is newer
 *  than every source file. */
export function compileInfra(): string {
  const stamp = path.join(OUT, '.stamp');
  const src = Math.max(newest(path.join(INFRA, 'lib')), newest(path.join(INFRA, 'bin')));
  if (fs.existsSync(stamp) && fs.statSync(stamp).mtimeMs >= src) return OUT;
  const ts = require(path.join(ROOT, 'node_modules', 'typescript'));
  for (const sub of ['lib', 'bin']) {
    fs.mkdirSync(path.join(OUT, sub), { recursive: true });
    for (const f of fs.readdirSync(path.join(INFRA, sub)).filter((n) => n.endsWith('.ts') && !n.endsWith('.d.ts'))) {
      const js = ts.transpileModule(fs.readFileSync(path.join(INFRA, sub, f), 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
        fileName: f,
      }).outputText;
      fs.writeFileSync(path.join(OUT, sub, f.replace(/\.ts$/, '.js')), js);
    }
  }
  fs.writeFileSync(stamp, '');
  return OUT;
}

/** infra/lib's modules (untyped here: their types live outside the notebook's folder). */
export function loadInfra(): { presets: any; config: any; gyreStack: any } {
  const out = compileInfra();
  return {
    presets: require(path.join(out, 'lib', 'presets')),
    config: require(path.join(out, 'lib', 'config')),
    gyreStack: require(path.join(out, 'lib', 'gyre_stack')),
  };
}

export interface Synthesized {
  config: any;              // GyreConfig: stackName, endpointName, preset, modelS3Uri, ...
  template: any;            // the CloudFormation template
  outdir: string;           // the cloud assembly (what cdk deploy uploads)
  warnings: string[];
}

/** Builds the stack as bin/app.ts does, for `-c key=value` context, and synthesizes it. */
export function synth(context: Record<string, string>): Synthesized {
  const { config: cfg, gyreStack } = loadInfra();
  const { App } = require('aws-cdk-lib');
  const cdkJson = JSON.parse(fs.readFileSync(path.join(INFRA, 'cdk.json'), 'utf8'));
  const outdir = fs.mkdtempSync(path.join(scratch(), 'cdk.out-'));
  const app = new App({ context: { ...cdkJson.context, ...context }, outdir });
  const config = cfg.configFromContext(app.node);
  const stack = new gyreStack.GyreStack(app, config.stackName, {
    config,
    description: `Gyre LLM endpoint (${config.preset}) on Amazon SageMaker`,
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  });
  const artifact = app.synth().getStackByName(stack.stackName);
  const warnings = artifact.messages.filter((m: any) => m.level !== 'info').map((m: any) => `${m.level}: ${m.entry.data}`);
  return { config, template: artifact.template, outdir, warnings };
}

/** One line per resource: logical id, type, and what matters about it. */
export function resources(template: any): { id: string; type: string; what: string }[] {
  const show = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));
  return Object.entries(template.Resources as Record<string, any>)
    .filter(([, r]) => r.Type !== 'AWS::CDK::Metadata')
    .map(([id, r]) => {
      const p = r.Properties ?? {};
      let what = '';
      switch (r.Type) {
        case 'AWS::SageMaker::Model':
          what = `model data ${show(p.PrimaryContainer?.ModelDataSource?.S3DataSource?.S3Uri ?? p.PrimaryContainer?.Environment?.GYRE_MODEL)}, ` +
            `network isolation ${p.EnableNetworkIsolation}`;
          break;
        case 'AWS::SageMaker::EndpointConfig': {
          const v = p.ProductionVariants[0];
          what = `${v.InstanceType} x${v.InitialInstanceCount}, AMI ${v.InferenceAmiVersion}, ` +
            `download ${v.ModelDataDownloadTimeoutInSeconds} s, startup ${v.ContainerStartupHealthCheckTimeoutInSeconds} s`;
          break;
        }
        case 'AWS::SageMaker::Endpoint': what = `name ${show(p.EndpointName)}`; break;
        case 'AWS::ApplicationAutoScaling::ScalableTarget': what = `${p.MinCapacity}..${p.MaxCapacity} instances`; break;
        case 'AWS::ApplicationAutoScaling::ScalingPolicy': {
          const t = p.TargetTrackingScalingPolicyConfiguration;
          what = `target ${t?.TargetValue} of ${t?.PredefinedMetricSpecification?.PredefinedMetricType ?? 'a custom metric'}`;
          break;
        }
        case 'AWS::CloudWatch::Alarm': what = `${p.MetricName ?? 'metric math'} ${p.ComparisonOperator} ${p.Threshold}`; break;
        case 'AWS::IAM::Policy': {
          const actions = (p.PolicyDocument.Statement as any[]).flatMap((s) => ([] as string[]).concat(s.Action));
          what = `${actions.length} actions: ${actions.slice(0, 4).join(', ')}${actions.length > 4 ? ', ...' : ''}`;
          break;
        }
        case 'AWS::IAM::Role': what = `assumed by ${show(p.AssumeRolePolicyDocument?.Statement?.[0]?.Principal?.Service)}`; break;
      }
      return { id, type: r.Type, what };
    });
}

/** Runs `npx cdk <args>` in infra/, printing its output as it comes (AWS mode). */
export function cdk(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = child_process.spawn('npx', ['cdk', ...args, '--no-notices'], { cwd: INFRA, env: { ...process.env, CDK_DISABLE_CLI_TELEMETRY: 'true' } });
    let buf = '';
    const print = (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) console.log(l);
    };
    p.stdout.on('data', print);
    p.stderr.on('data', print);
    p.on('error', reject);
    p.on('close', (code) => {
      if (buf) console.log(buf);
      if (code === 0) resolve(); else reject(new Error(`cdk ${args.join(' ')} exited with ${code}`));
    });
  });
}
