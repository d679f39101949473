// gyre serve: the SageMaker serving container's server (TGI- and OpenAI-compatible HTTP API).
// Settings come from flags, then the environment (see src/server/config.ts); SIGTERM drains.
import { ConfigError, resolveConfig } from '../../server/config';
import type { GyreServer } from '../../server/server';

export async function run(opts: Record<string, unknown>): Promise<void> {
  let cfg;
  try {
    cfg = resolveConfig(opts);
  } catch (e) {
    if (e instanceof ConfigError) throw new Error(`serve: ${e.message}`);
    throw e;
  }
  let server: GyreServer | undefined;
  let signals = 0;
  const stop = (signal: string) => {
    // Before the server exists nothing is in flight; a second signal does not wait for the drain.
    if (!server || ++signals > 1) process.exit(signals > 1 ? 1 : 0);
    server.context.logger.info({ signal }, 'shutting down');
    void server.shutdown().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  const { startServer } = await import('../../server/server');
  server = await startServer(cfg);
}
