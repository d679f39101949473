// A real S3 API for tests: s3rver on 127.0.0.1, and an HTTP proxy in front of it that can cut
// a response mid-body, answer 404, or cap each response's rate (as S3 caps each connection).
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const S3rver = require('s3rver');

export interface S3Server {
  port: number;
  dir: string;
  close(): Promise<void>;
}

export async function startS3rver(buckets: string[]): Promise<S3Server> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-s3rver-'));
  const server = new S3rver({
    address: '127.0.0.1', port: 0, silent: true, directory: dir, configureBuckets: buckets.map((name) => ({ name })),
  });
  const { port } = (await server.run()) as AddressInfo;
  return {
    port, dir,
    close: async () => { await server.close(); fs.rmSync(dir, { recursive: true, force: true }); },
  };
}

/** Points the SDK's standard configuration at an endpoint (as a user would with a store). */
export function useEndpoint(port: number): void {
  process.env.AWS_ENDPOINT_URL_S3 = `http://127.0.0.1:${port}`;
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  process.env.AWS_REGION = 'us-east-1';
}

export interface ProxyRequest { method: string; url: string; range?: string; status?: number; bytes: number }

export class FaultProxy {
  readonly requests: ProxyRequest[] = [];
  /** Ranged GETs still to cut; each is cut after `cutAfter` body bytes (shorter ones pass). */
  cutRanges = 0;
  cutAfter = 100_000;
  /** Keys (matched against the URL) answered with 404 NoSuchKey. */
  notFound?: RegExp;
  /** Keys answered with 412 PreconditionFailed when the GET carries If-Match (s3rver ignores it). */
  changed?: RegExp;
  /** Bytes per second for each response body; 0: unlimited. */
  rate = 0;
  /** Awaited before a ranged GET is forwarded (n counts ranged GETs from 1), e.g. to swap the object. */
  beforeRangedGet?: (rec: ProxyRequest, n: number) => Promise<void>;
  private rangedGets = 0;
  /** Most requests in flight at once (reset it to measure). */
  peak = 0;
  port = 0;
  private active = 0;
  private server?: http.Server;
  private readonly agent = new http.Agent({ keepAlive: true });

  constructor(private readonly target: number) {}

  async start(): Promise<number> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
    this.agent.destroy();
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const rec: ProxyRequest = { method: req.method!, url: req.url!, range: req.headers.range, bytes: 0 };
    this.requests.push(rec);
    this.peak = Math.max(this.peak, ++this.active);
    res.on('close', () => this.active--);
    if (this.notFound?.test(req.url!) && req.method === 'GET') {
      rec.status = 404;
      res.writeHead(404, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>');
      return;
    }
    if (this.changed?.test(req.url!) && req.headers['if-match']) {
      rec.status = 412;
      res.writeHead(412, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>');
      return;
    }
    const ranged = req.method === 'GET' && req.headers.range !== undefined;
    if (ranged && this.beforeRangedGet) {
      void this.beforeRangedGet(rec, ++this.rangedGets).then(() => this.forward(req, res, rec, ranged), () => res.destroy());
    } else {
      this.forward(req, res, rec, ranged);
    }
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse, rec: ProxyRequest, ranged: boolean): void {
    // Headers go through unchanged: the SigV4 signature covers the Host header.
    const up = http.request({ agent: this.agent, host: '127.0.0.1', port: this.target, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      rec.status = ur.statusCode;
      res.writeHead(ur.statusCode!, ur.headers);
      const t0 = performance.now();
      ur.on('data', (chunk: Buffer) => {
        // A cut is spent only on a body long enough to be cut.
        if (ranged && this.cutRanges > 0 && rec.bytes + chunk.length > this.cutAfter) {
          this.cutRanges--;
          const head = chunk.subarray(0, this.cutAfter - rec.bytes);
          rec.bytes = this.cutAfter;
          ur.destroy();
          // The connection drops mid-range, once these bytes are out.
          res.write(head, () => res.socket?.destroy());
          return;
        }
        rec.bytes += chunk.length;
        if (!res.write(chunk)) { ur.pause(); res.once('drain', () => ur.resume()); }
        if (this.rate > 0) {
          const due = t0 + (rec.bytes / this.rate) * 1000 - performance.now();
          if (due > 1) { ur.pause(); setTimeout(() => ur.resume(), due); }
        }
      });
      ur.on('end', () => res.end());
      ur.on('error', () => res.destroy());
    });
    up.on('error', () => res.destroy());
    res.on('close', () => { if (!res.writableFinished) up.destroy(); });   // the client went away
    req.pipe(up);
  }
}

/** Captures what the CLI writes to stdout and stderr. */
export function captureOutput(): { stdout: () => string; stderr: () => string } {
  let out = '', err = '';
  jest.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => { out += String(s); return true; });
  jest.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => { err += String(s); return true; });
  return { stdout: () => out, stderr: () => err };
}

export function filesEqual(a: string, b: string): boolean {
  return fs.readFileSync(a).equals(fs.readFileSync(b));
}
