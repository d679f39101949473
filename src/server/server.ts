// gyre serve's server: listens first (SageMaker wants connections accepted within 250 ms), then
// loads the model in the background; /ping turns 200 once it is ready. shutdown() is SIGTERM's
// drain: 503 for new requests, in-flight ones get up to drainTimeoutMs, then everything closes.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { DestinationStream } from 'pino';
import type { ServeConfig } from './config';
import type { ServerContext } from './context';
import type { Logger } from './logger';
import type { EngineLoader } from './model_host';
import { loadAddon } from '../engine/native';

/** SO_SNDBUF of each connection (the kernel doubles it): ample for token streams. */
const SOCKET_SEND_BUFFER_BYTES = 128 * 1024;

export interface StartOptions {
  logger?: Logger;
  logDestination?: DestinationStream;
  loadEngine?: EngineLoader;
}

export interface GyreServer {
  readonly url: string;
  readonly port: number;
  readonly context: ServerContext;
  /** Settles when loading has finished, ready or failed. */
  readonly loaded: Promise<void>;
  /** Drain (503 for new requests, in-flight ones finish within the drain timeout), then close. */
  shutdown(): Promise<void>;
}

function version(): string {
  try {
    return JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')).version;
  } catch {
    return '0.0.0';
  }
}

export async function startServer(cfg: ServeConfig, opts: StartOptions = {}): Promise<GyreServer> {
  // Listen before loading express, pino, prom-client and zod (~250 ms together): the kernel
  // accepts connections meanwhile, and requests wait here for the app.
  let app: http.RequestListener | undefined;
  const early: [http.IncomingMessage, http.ServerResponse][] = [];
  // Responses not yet finished: at the drain deadline each gets its error reply before sockets close.
  const open = new Set<http.ServerResponse>();
  let onAllClosed: (() => void) | undefined;
  const server = http.createServer((req, res) => {
    open.add(res);
    res.on('close', () => {
      open.delete(res);
      if (open.size === 0) onAllClosed?.();
    });
    if (app) app(req, res);
    else early.push([req, res]);
  });
  const allClosed = (timeoutMs: number) => new Promise<void>((resolve) => {
    if (open.size === 0) { resolve(); return; }
    const timer = setTimeout(resolve, timeoutMs);
    onAllClosed = () => { clearTimeout(timer); resolve(); };
  });
  // Longer than any load balancer's idle timeout, so a reused connection is never cut under it.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, () => { server.off('error', reject); resolve(); });
  });
  const port = (server.address() as AddressInfo).port;

  const [{ Admission }, { createApp }, { EmfReporter }, { createLogger }, { Metrics }, { ModelHost }, { BodyBudget }] = await Promise.all([
    import('./admission'), import('./app'), import('./emf'), import('./logger'), import('./metrics'), import('./model_host'), import('./body'),
  ]);
  // A fixed kernel send buffer per connection: autotuned, a socket nobody reads holds up to ~4 MB
  // outside any cap of ours (maxResponseBufferBytes bounds what Node holds).
  try {
    const addon = loadAddon();
    server.on('connection', (socket) => {
      const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
      if (typeof fd === 'number') addon.setSendBuffer(fd, SOCKET_SEND_BUFFER_BYTES);
    });
  } catch {
    // no addon here (the model will fail to load and say why): the kernel's default
  }
  const logger = opts.logger ?? createLogger(opts.logDestination);
  const host = new ModelHost(cfg, logger, opts.loadEngine);
  const stats = () => host.model?.engine.stats();
  const v = version();
  const ctx: ServerContext = {
    cfg,
    host,
    admission: new Admission(cfg.maxSeqs, cfg.maxWaiting, () => stats()?.numWaiting ?? 0),
    bodyLimits: { timeoutMs: cfg.bodyTimeoutMs, budget: new BodyBudget(cfg.maxBodyBytesInFlight) },
    metrics: new Metrics(stats),
    emf: new EmfReporter(logger, () => host.name, stats),
    logger,
    version: v,
    fingerprint: `gyre-${v}`,
  };
  app = createApp(ctx);
  for (const [req, res] of early.splice(0)) app(req, res);
  logger.info({ port, host: cfg.host, model: cfg.model, model_from: cfg.modelFrom }, 'listening');
  ctx.emf.start(cfg.emfIntervalMs);
  // Let the listening socket start answering before the (partly synchronous) load begins.
  const loaded = new Promise<void>((resolve) => setImmediate(() => { void host.load().finally(resolve); }));

  let shuttingDown: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    shuttingDown ??= (async () => {
      host.drain();
      const inFlight = ctx.admission.numRequests;
      logger.info({ in_flight: inFlight, drain_timeout_ms: cfg.drainTimeoutMs }, 'draining');
      const drained = await ctx.admission.whenIdle(cfg.drainTimeoutMs);
      if (!drained) logger.warn({ in_flight: ctx.admission.numRequests }, 'drain timed out: aborting the requests still running');
      ctx.emf.stop();
      ctx.emf.flush();
      await host.close();
      // Aborted requests answer (503, or an error event) on their own connections; wait for those
      // replies to be handed to the kernel before closing the sockets.
      if (!drained) await allClosed(1000);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      logger.info('stopped');
    })();
    return shuttingDown;
  };

  return { url: `http://127.0.0.1:${port}`, port, context: ctx, loaded, shutdown };
}
