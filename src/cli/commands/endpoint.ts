// gyre endpoint: a local SageMaker runtime endpoint in front of a running container, for the AWS
// SDK (`new SageMakerRuntimeClient({endpoint: 'http://127.0.0.1:8081', ...})`). Logs JSON lines.
import { startEndpoint } from '../../sagemaker/endpoint';
import { createLogger } from '../../server/logger';

export async function run(opts: Record<string, unknown>): Promise<void> {
  const log = createLogger(undefined, undefined, { component: 'endpoint' });
  const target = opts.target as string;
  const ep = await startEndpoint({
    target, port: opts.port as number, host: opts.host as string,
    readyTimeoutMs: (opts.readyTimeout as number) * 1000, logger: log,
  });
  const url = `http://${opts.host as string}:${ep.port}`;
  log.info({ url, target }, `SageMaker runtime endpoint on ${url}, for the container at ${target}; ` +
    'invocations wait until its GET /ping answers 200');
  ep.target.on('ready', () => log.info({ target }, `container ready (GET ${new URL('/ping', target).href} is 200): answering invocations`));
  ep.target.on('lost', (reason: string) => log.warn({ target, reason }, 'container lost: waiting for GET /ping 200 again'));
  const waiting = setInterval(() => {
    const s = ep.target.status;
    if (!s.ready) log.info({ target, reason: s.reason }, 'still waiting for the container');
  }, 10_000);
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info({ signal }, 'closing');
      clearInterval(waiting);
      void ep.close().then(resolve);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
