// The container behind the local endpoint: its readiness (GET /ping, as SageMaker polls it) and
// POST /invocations. Readiness is polled until the first 200; a refused connection later on
// sends it back to polling, as SageMaker takes an instance that stops answering out of service.
import * as http from 'node:http';
import { EventEmitter } from 'node:events';

const PING_INTERVAL_MS = 500;
const PING_TIMEOUT_MS = 2000;  // SageMaker's per-ping timeout

export type TargetState = { ready: true } | { ready: false; reason: string };

export class Target extends EventEmitter {
  readonly url: URL;
  private state: TargetState = { ready: false, reason: 'no /ping answer yet' };
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(url: string) {
    super();
    this.url = new URL(url);
    if (this.url.protocol !== 'http:') throw new Error(`--target must be an http:// URL, got ${url}`);
  }

  get status(): TargetState {
    return this.state;
  }

  /** Starts polling /ping; emits 'ready' on the first 200. */
  start(): void {
    if (this.closed || this.timer || this.state.ready) return;
    const tick = (): void => {
      this.ping().then((s) => {
        this.timer = undefined;
        if (this.closed) return;
        this.state = s;
        if (s.ready) this.emit('ready');
        else this.timer = setTimeout(tick, PING_INTERVAL_MS);
      }, () => undefined);
    };
    this.timer = setTimeout(tick, 0);
  }

  /** The container went away (connection refused): poll /ping again before answering. */
  lost(reason: string): void {
    if (!this.state.ready || this.closed) return;
    this.state = { ready: false, reason };
    this.emit('lost', reason);
    this.start();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Resolves true once ready, false after timeoutMs. */
  whenReady(timeoutMs: number): Promise<boolean> {
    if (this.state.ready) return Promise.resolve(true);
    return new Promise((resolve) => {
      const onReady = (): void => { clearTimeout(t); resolve(true); };
      const t = setTimeout(() => { this.off('ready', onReady); resolve(false); }, timeoutMs);
      this.once('ready', onReady);
    });
  }

  private ping(): Promise<TargetState> {
    return new Promise((resolve) => {
      const req = http.get(new URL('/ping', this.url), { timeout: PING_TIMEOUT_MS, agent: false }, (res) => {
        const chunks: Uint8Array[] = [];
        res.on('data', (c: Uint8Array) => chunks.push(c));
        res.on('error', () => resolve({ ready: false, reason: 'GET /ping broke off' }));
        res.on('end', () => {
          if (res.statusCode === 200) return resolve({ ready: true });
          const body = Buffer.concat(chunks).toString('utf8').slice(0, 500);
          resolve({ ready: false, reason: `GET /ping answered ${res.statusCode}${body ? `: ${body}` : ''}` });
        });
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${PING_TIMEOUT_MS} ms`)));
      req.on('error', (e) => resolve({ ready: false, reason: `GET /ping failed: ${e.message}` }));
    });
  }

  /** POST /invocations; resolves with the response (headers received) or rejects. */
  invoke(body: Buffer, headers: http.OutgoingHttpHeaders): { response: Promise<http.IncomingMessage>; request: http.ClientRequest } {
    const request = http.request(new URL('/invocations', this.url), {
      method: 'POST',
      agent: false,  // a fresh connection: no race with the container closing an idle keep-alive one
      headers: { ...headers, 'content-length': body.length },
    });
    const response = new Promise<http.IncomingMessage>((resolve, reject) => {
      request.on('response', resolve);
      request.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ECONNREFUSED') this.lost(`POST /invocations: ${e.message}`);
        reject(e);
      });
    });
    request.end(body);
    return { response, request };
  }
}
