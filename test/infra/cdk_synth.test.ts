// `npx cdk synth` from infra/, offline, as a newcomer runs it: no context gives the default preset
// against cdk.json's placeholder model, with the serving image staged as a Docker asset.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';

const INFRA = path.resolve(__dirname, '..', '..', 'infra');
const env = { ...process.env, CDK_DISABLE_CLI_TELEMETRY: 'true', AWS_EC2_METADATA_DISABLED: 'true', FORCE_COLOR: '0' };

function cdkSynth(out: string, ...context: string[]): Promise<{ code: number; output: string }> {
  const args = ['cdk', 'synth', '--no-notices', '-q', '-o', out, ...context.flatMap((c) => ['-c', c])];
  return new Promise((resolve) => {
    execFile('npx', args, { cwd: INFRA, env, timeout: 170_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-cdk-')); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('cdk synth with no context: the default preset, the image staged, cdk-nag clean', async () => {
  const out = path.join(tmp, 'default');
  const r = await cdkSynth(out);
  expect(r.output).not.toMatch(/ERROR/);
  expect(r.code).toBe(0);
  expect(r.output).toMatch(/placeholder s3:\/\/gyre-example-models\/llama-2-7b-chat\//);
  const template = JSON.parse(fs.readFileSync(path.join(out, 'Gyre-llama-2-7b-chat.template.json'), 'utf8'));
  const types = Object.values(template.Resources as Record<string, { Type: string; Properties: Record<string, any> }>);
  const config = types.find((x) => x.Type === 'AWS::SageMaker::EndpointConfig')!;
  expect(config.Properties.ProductionVariants[0]).toMatchObject({ InstanceType: 'ml.g5.2xlarge', InferenceAmiVersion: 'al2-ami-sagemaker-inference-gpu-3-1' });
  const model = types.find((x) => x.Type === 'AWS::SageMaker::Model')!;
  expect(model.Properties.PrimaryContainer.ModelDataSource.S3DataSource.S3Uri).toBe('s3://gyre-example-models/llama-2-7b-chat/');

  const assets = JSON.parse(fs.readFileSync(path.join(out, 'Gyre-llama-2-7b-chat.assets.json'), 'utf8'));
  const [image] = Object.values(assets.dockerImages) as { source: { directory: string; dockerFile: string; platform: string } }[];
  expect(image.source).toMatchObject({ dockerFile: 'container/Dockerfile', platform: 'linux/amd64' });
  const staged = path.join(out, image.source.directory);
  expect(fs.existsSync(path.join(staged, 'container', 'Dockerfile'))).toBe(true);
  expect(fs.existsSync(path.join(staged, 'node_modules'))).toBe(false);
  expect(fs.existsSync(path.join(staged, 'native', 'build'))).toBe(false);
  // The whole build context stays small: sources, not dependencies or weights.
  const size = (dir: string): number => fs.readdirSync(dir, { withFileTypes: true })
    .reduce((n, e) => n + (e.isDirectory() ? size(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).size), 0);
  expect(size(staged)).toBeLessThan(20 * 1024 * 1024);
}, 180_000);

test('cdk synth refuses 13B in fp16 on one A10G, saying why: the sentence alone, exit 1, no stack trace', async () => {
  const r = await cdkSynth(path.join(tmp, 'refused'), 'preset=llama-2-13b-chat', 'quantization=none', 'modelS3Uri=s3://acme-models/llama-2-13b-chat/');
  expect(r.code).toBe(1);
  expect(r.output).toMatch(/^gyre: llama-2-13b-chat \(llama-2-13b\) in fp16 needs 26\.0 GB of weights.*cannot be served on one A10G/);
  expect(r.output).not.toMatch(/^\s+at |throw new Error|^Error:/m);
}, 180_000);
