// gyre serve: the SageMaker serving container's server (TGI- and OpenAI-compatible HTTP API).
// Settings come from flags, then the environment (see src/server/config.ts); SIGTERM drains.
// A model that fails to load ends the process with exit code 1 (as TGI does), so SageMaker fails
// the endpoint at once with the reason in CloudWatch, unless GYRE_STAY_UP_ON_LOAD_FAILURE is set.
import { ConfigError, type ServeConfig, resolveConfig } from '../../server/config';
import type { GyreServer } from '../../server/server';

export async function run(opts: Record<string, unknown>): Promise<void> {
  let cfg: ServeConfig;
  try {
    cfg = resolveConfig(opts);
  } catch (e) {
    if (e instanceof ConfigError) throw new Error(`serve: ${e.message}`);
    throw e;
  }
  let server: GyreServer | undefined;
  const exit = (code: number) => {
    if (!server) process.exit(code);
    server.context.logger.flush(() => process.exit(code));
  };
  let signals = 0;
  const stop = (signal: string) => {
    // Before the server exists nothing is in flight; a second signal does not wait for the drain.
    if (!server || ++signals > 1) process.exit(signals > 1 ? 1 : 0);
    server.context.logger.info({ signal }, 'shutting down');
    void server.shutdown().then(() => exit(0), () => exit(1));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  const { startServer } = await import('../../server/server');
  server = await startServer(cfg);
  const started = server;
  void started.loaded.then(async () => {
    if (started.context.host.state !== 'failed' || cfg.stayUpOnLoadFailure) return;
    await started.shutdown().catch(() => undefined);
    started.context.logger.error({ exit_code: 1 }, 'exiting: the model failed to load (GYRE_STAY_UP_ON_LOAD_FAILURE=1 keeps the server up)');
    exit(1);
  });
}
