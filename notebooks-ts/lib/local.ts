// Local mode for the notebooks: the parts of AWS that Gyre can stand in for on one machine.
//
//   SageMaker endpoint  -> `gyre serve` (the container's server) + `gyre endpoint` (the runtime API)
//   S3                  -> s3rver, in the kernel's process
//
// Local mode is on when no AWS credentials are found; GYRE_LOCAL=1 forces it, GYRE_LOCAL=0 turns
// it off. Every process started here is stopped by stopAll(), and also when the kernel exits or
// gets SIGTERM (Jupyter's shutdown and restart), so a failing cell leaves nothing running.
import * as child_process from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';

/** The repository root: the folder above the notebook that holds Gyre's package.json. */
export function findRoot(from: string = process.cwd()): string {
  for (let dir = path.resolve(from); ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'gyre') return dir;
    if (path.dirname(dir) === dir) throw new Error(`no Gyre checkout above ${from}`);
  }
}

export const ROOT = findRoot();
export const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
export const DEMO_MODEL = path.join(ROOT, 'models', 'demo');

/** Credentials the AWS SDK would find without a network call: environment, profiles, containers.
 *  Instance roles (EC2, SageMaker Studio) need a network call: there, set GYRE_LOCAL=0. */
export function awsCredentialsPresent(env: NodeJS.ProcessEnv = process.env): boolean {
  const vars = ['AWS_ACCESS_KEY_ID', 'AWS_PROFILE', 'AWS_WEB_IDENTITY_TOKEN_FILE',
    'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_CREDENTIALS_FULL_URI'];
  if (vars.some((v) => env[v])) return true;
  const aws = path.join(os.homedir(), '.aws');
  if (fs.existsSync(env.AWS_SHARED_CREDENTIALS_FILE ?? path.join(aws, 'credentials'))) return true;
  // A config file may hold only a region; count it when it can produce credentials.
  const config = env.AWS_CONFIG_FILE ?? path.join(aws, 'config');
  return fs.existsSync(config) && /^\s*(aws_access_key_id|role_arn|sso_|credential_process|login_session)/m.test(fs.readFileSync(config, 'utf8'));
}

export const LOCAL = process.env.GYRE_LOCAL ? process.env.GYRE_LOCAL !== '0' : !awsCredentialsPresent();

/** What the SageMaker runtime client needs to talk to a local endpoint instead of AWS. */
export function runtimeClientConfig(endpointUrl: string) {
  return { endpoint: endpointUrl, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } };
}

// ---- processes --------------------------------------------------------------------------------

export interface Child {
  readonly name: string;
  readonly proc: child_process.ChildProcess;
  readonly logFile: string;
  exited(): boolean;
}

// Kept on globalThis so that the hooks below see every child even if the module is evaluated again.
const state = ((globalThis as any).__gyreNotebook ??= { children: new Set<Child>(), workDir: undefined, hooked: false }) as
  { children: Set<Child>; workDir?: string; hooked: boolean };
const children = state.children;

/** A folder for this kernel's logs and scratch files, removed by stopAll() (or when the kernel exits). */
export function scratch(): string {
  state.workDir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-notebook-'));
  return state.workDir;
}

function cleanUpNow(): void {
  for (const c of children) if (!c.exited()) try { c.proc.kill('SIGKILL'); } catch { /* gone */ }
  if (state.workDir) fs.rmSync(state.workDir, { recursive: true, force: true });
}

if (!state.hooked) {
  state.hooked = true;
  process.on('exit', cleanUpNow);
  process.on('SIGTERM', () => { cleanUpNow(); process.exit(143); });
}

/** Runs `gyre <args>` in the background; its output goes to a log file (tail() shows it). */
export function gyre(name: string, args: string[], env: Record<string, string> = {}): Child {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build:ts\` in ${ROOT}`);
  const logFile = path.join(scratch(), `${name}.log`);
  const fd = fs.openSync(logFile, 'a');
  const proc = child_process.spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', fd, fd],
  });
  fs.closeSync(fd);
  // Unreferenced: when Jupyter shuts the kernel down, its event loop empties, it exits, and the
  // 'exit' hook above kills the children.
  proc.unref();
  let done = false;
  proc.on('exit', () => { done = true; });
  const child: Child = { name, proc, logFile, exited: () => done || proc.exitCode !== null || proc.signalCode !== null };
  children.add(child);
  // The test runner kills anything listed here that outlives the kernel.
  if (process.env.GYRE_NOTEBOOK_PIDS && proc.pid) fs.appendFileSync(process.env.GYRE_NOTEBOOK_PIDS, `${proc.pid}\n`);
  return child;
}

/** The last lines of a child's log. */
export function tail(child: Child, lines = 20): string {
  const text = fs.existsSync(child.logFile) ? fs.readFileSync(child.logFile, 'utf8') : '';
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** Runs `gyre <args>` to completion and returns its stdout; throws with its stderr on failure. */
export function gyreSync(args: string[], env: Record<string, string> = {}): string {
  const r = child_process.spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gyre ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stderr}`);
  return r.stdout;
}

/** A port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function getStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 2000 }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
    req.on('error', () => resolve(0));
    req.on('timeout', () => { req.destroy(); resolve(0); });
  });
}

/** Waits until GET url answers `want` (any status when want is 0), or the child exits. */
export async function waitFor(url: string, child: Child, { want = 200, timeoutMs = 60_000 } = {}): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const status = await getStatus(url);
    if (status !== 0 && (want === 0 || status === want)) return;
    if (child.exited()) throw new Error(`${child.name} exited (${child.proc.exitCode ?? child.proc.signalCode}):\n${tail(child)}`);
    if (Date.now() - t0 > timeoutMs) throw new Error(`${url} did not answer ${want || 'at all'} within ${timeoutMs} ms:\n${tail(child)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---- a local SageMaker endpoint --------------------------------------------------------------

export interface LocalEndpoint {
  /** What the SageMaker runtime client gets as `endpoint:`. */
  readonly url: string;
  /** The container's own URL (`gyre serve`): /ping, /invocations, /metrics, the OpenAI routes. */
  readonly containerUrl: string;
  readonly container: Child;
  readonly runtime: Child;
}

export interface LocalEndpointOptions {
  /** A model folder or s3://bucket/prefix/ (GYRE_MODEL). Default: models/demo. */
  model?: string;
  /** More container environment (GYRE_*), as the CDK stack would set it. */
  env?: Record<string, string>;
  name?: string;
}

/** Starts the container (`gyre serve`) and the runtime API in front of it (`gyre endpoint`), and
 *  returns once the container's /ping is 200, as SageMaker marks an endpoint InService. */
export async function startLocalEndpoint(opts: LocalEndpointOptions = {}): Promise<LocalEndpoint> {
  const name = opts.name ?? 'gyre';
  const [port, runtimePort] = [await freePort(), await freePort()];
  const containerUrl = `http://127.0.0.1:${port}`;
  // The container reads its settings from the environment, as on SageMaker.
  const container = gyre(`${name}-serve`, ['serve'], {
    GYRE_MODEL: opts.model ?? DEMO_MODEL, SAGEMAKER_BIND_TO_PORT: String(port), GYRE_HOST: '127.0.0.1', GYRE_BACKEND: 'cpu', GYRE_EMF_INTERVAL: '0',
    ...opts.env,
  });
  const runtime = gyre(`${name}-endpoint`, ['endpoint', '--target', containerUrl, '--port', String(runtimePort)]);
  const url = `http://127.0.0.1:${runtimePort}`;
  await waitFor(`${containerUrl}/ping`, container, { timeoutMs: 120_000 });
  await waitFor(url, runtime, { want: 0 });   // any answer: it listens
  return { url, containerUrl, container, runtime };
}

/** Stops every process started here (SIGTERM, then SIGKILL after 10 s) and removes scratch(). */
export async function stopAll(): Promise<string[]> {
  const stopped: string[] = [];
  await Promise.all([...children].map(async (c) => {
    if (!c.exited()) {
      const gone = new Promise((r) => c.proc.once('exit', r));
      c.proc.kill('SIGTERM');
      const timer = setTimeout(() => c.proc.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(timer);
      stopped.push(c.name);
    }
    children.delete(c);
  }));
  if (state.workDir) fs.rmSync(state.workDir, { recursive: true, force: true });
  state.workDir = undefined;
  return stopped;
}

// ---- the endpoint a notebook talks to ---------------------------------------------------------

export interface OpenedEndpoint {
  readonly endpointName: string;
  /** The SageMakerRuntimeClient's configuration: {} in AWS mode, the local URL in local mode. */
  readonly clientConfig: Record<string, unknown>;
  readonly local?: LocalEndpoint;
}

/** AWS mode: the endpoint notebook 01 deployed (GYRE_ENDPOINT_NAME, default the preset's stack's:
 *  gyre-llama-2-7b-chat). Local mode: a fresh local endpoint (default: the demo model). */
export async function openEndpoint(opts: LocalEndpointOptions = {}): Promise<OpenedEndpoint> {
  if (!LOCAL) {
    const endpointName = process.env.GYRE_ENDPOINT_NAME ?? `gyre-${process.env.GYRE_PRESET ?? 'llama-2-7b-chat'}`;
    return { endpointName, clientConfig: {} };
  }
  const ep = await startLocalEndpoint(opts);
  return { endpointName: 'gyre-local', clientConfig: runtimeClientConfig(ep.url), local: ep };
}

// ---- a local S3 -------------------------------------------------------------------------------

export interface LocalS3 {
  /** Where the SDK finds it: AWS_ENDPOINT_URL_S3, set in this kernel's environment (and so in the
   *  environment of every process started after it). */
  readonly url: string;
  close(): Promise<void>;
}

/** Starts s3rver (an S3 API on disk) in this process with the given buckets, and points the AWS
 *  SDK's standard settings at it: AWS_ENDPOINT_URL_S3 and its fixed S3RVER credentials. */
export async function startLocalS3(buckets: string[]): Promise<LocalS3> {
  const S3rver = require('s3rver');
  const directory = fs.mkdtempSync(path.join(scratch(), 's3-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, configureBuckets: buckets.map((name) => ({ name })) });
  const { port } = (await server.run()) as net.AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  const saved = ['AWS_ENDPOINT_URL_S3', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION'].map((k) => [k, process.env[k]] as const);
  Object.assign(process.env, { AWS_ENDPOINT_URL_S3: url, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' });
  return {
    url,
    close: async () => {
      await server.close();
      for (const [k, v] of saved) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    },
  };
}
