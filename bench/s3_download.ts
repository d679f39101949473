// Benchmark (not a test): S3 download throughput of a 1 GB model folder through a proxy that caps
// each connection at ~80 MB/s, as S3 does, for the parallel ranged-GET downloader (with sha256
// verification) next to a single-stream GetObject baseline, in the same run.
// s3rver and the proxy run in a child process, so the downloader has a core of its own.
//
//   npx tsc --outDir dist/bench-s3 --rootDir . --module commonjs --target es2022 --esModuleInterop \
//     --skipLibCheck --types node bench/s3_download.ts && node dist/bench-s3/bench/s3_download.js [MB]
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { buildManifest, MANIFEST_NAME } from '../src/model/manifest';
import { downloadModel } from '../src/model/s3_download';

const CAP = Number(process.env.BENCH_CAP ?? 80e6);   // bytes/s per connection
const MB = 1e6;

/** Child: s3rver behind two proxies, one pacing every response body at CAP, one not. */
async function serve(dir: string): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const S3rver = require('s3rver');
  const s3 = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir, configureBuckets: [{ name: 'bench' }] });
  const { port } = (await s3.run()) as AddressInfo;
  const agent = new http.Agent({ keepAlive: true });
  const proxy = (cap: number) => http.createServer((req, res) => {
    const up = http.request({ agent, host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode!, ur.headers);
      const t0 = performance.now();
      let sent = 0;
      ur.on('data', (chunk: Buffer) => {
        sent += chunk.length;
        res.write(chunk);
        const due = t0 + (sent / cap) * 1000 - performance.now();
        if (due > 1) { ur.pause(); setTimeout(() => ur.resume(), due); }
      });
      ur.on('end', () => res.end());
    });
    req.pipe(up);
  });
  const listen = async (server: http.Server) => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return (server.address() as AddressInfo).port;
  };
  process.send!({ direct: port, proxy: await listen(proxy(CAP)), uncapped: await listen(proxy(Infinity)) });
}

function client(port: number): S3Client {
  return new S3Client({
    endpoint: `http://127.0.0.1:${port}`, forcePathStyle: true, region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** A model-shaped folder: config.json and four shards of random bytes, `mb` MB in all. */
function makeFolder(dir: string, mb: number): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), '{"architectures": ["LlamaForCausalLM"]}\n');
  const block = Buffer.alloc(16 << 20);
  for (let s = 1; s <= 4; s++) {
    const fd = fs.openSync(path.join(dir, `model-0000${s}-of-00004.safetensors`), 'w');
    for (let left = Math.round((mb * MB) / 4); left > 0; left -= block.length) {
      require('node:crypto').randomFillSync(block);   // eslint-disable-line @typescript-eslint/no-require-imports
      fs.writeSync(fd, block, 0, Math.min(left, block.length));
    }
    fs.closeSync(fd);
  }
}

async function main(): Promise<void> {
  if (process.argv[2] === '--serve') return serve(process.argv[3]);
  const mb = Number(process.argv[2] ?? 1000);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-bench-s3-'));
  const child = fork(__filename, ['--serve', path.join(work, 's3rver')]);
  try {
    const ports = await new Promise<{ direct: number; proxy: number; uncapped: number }>((r) => child.once('message', r as never));
    const src = path.join(work, 'model');
    makeFolder(src, mb);
    const manifest = await buildManifest(src);
    const bytes = manifest.files.reduce((n, f) => n + f.size, 0);
    const direct = client(ports.direct);
    for (const f of manifest.files) {
      await new Upload({ client: direct, queueSize: 4, partSize: 16 << 20,
        params: { Bucket: 'bench', Key: `m/${f.name}`, Body: fs.createReadStream(path.join(src, f.name)) } }).done();
    }
    await new Upload({ client: direct, params: { Bucket: 'bench', Key: `m/${MANIFEST_NAME}`, Body: JSON.stringify(manifest) } }).done();
    direct.destroy();
    process.stderr.write(`uploaded ${(bytes / MB).toFixed(0)} MB\n`);

    // Baseline: one GetObject stream per file, one file after another.
    const single = client(ports.proxy);
    const out1 = path.join(work, 'single');
    fs.mkdirSync(out1);
    let t0 = performance.now();
    for (const f of manifest.files) {
      const r = await single.send(new GetObjectCommand({ Bucket: 'bench', Key: `m/${f.name}` }));
      await pipeline(r.Body as NodeJS.ReadableStream, fs.createWriteStream(path.join(out1, f.name)));
    }
    const singleSecs = (performance.now() - t0) / 1000;
    single.destroy();
    fs.rmSync(out1, { recursive: true });
    process.stderr.write(`single stream: ${(bytes / MB / singleSecs).toFixed(0)} MB/s\n`);

    process.env.AWS_ENDPOINT_URL_S3 = `http://127.0.0.1:${ports.proxy}`;
    process.env.AWS_ACCESS_KEY_ID = process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
    process.env.AWS_REGION = 'us-east-1';
    const runs = [];
    for (const concurrency of [8, 16, 32]) {
      const dir = path.join(work, `parallel-${concurrency}`);
      t0 = performance.now();
      const cpu0 = process.cpuUsage();
      const r = await downloadModel('s3://bench/m/', dir, { concurrency, progress: { log: false, bar: false } });
      const secs = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      // The downloader's own CPU (user + system) per GB, hashing included: what it would need at 10 Gbit/s.
      const cpuPerGb = (cpu.user + cpu.system) / 1e6 / (bytes / 1e9);
      runs.push({ concurrency, part_size_mib: 16, seconds: Number(secs.toFixed(2)), mb_s: Number((bytes / MB / secs).toFixed(1)),
        speedup: Number((singleSecs / secs).toFixed(2)), retries: r.retries, sha256_verified: true,
        client_cpu_s_per_gb: Number(cpuPerGb.toFixed(2)) });
      process.stderr.write(`parallel x${concurrency}: ${(bytes / MB / secs).toFixed(0)} MB/s\n`);
      fs.rmSync(dir, { recursive: true });
    }
    // The store's own ceiling on this machine: the same downloader with no cap.
    process.env.AWS_ENDPOINT_URL_S3 = `http://127.0.0.1:${ports.uncapped}`;
    t0 = performance.now();
    await downloadModel('s3://bench/m/', path.join(work, 'uncapped'), { progress: { log: false, bar: false } });
    const ceiling = bytes / MB / ((performance.now() - t0) / 1000);
    process.stderr.write(`uncapped store ceiling: ${ceiling.toFixed(0)} MB/s\n`);
    const cpu = os.cpus()[0].model;
    const result = {
      bench: 's3_download', date: new Date().toISOString(),
      machine: { cpu, cores: os.cpus().length, node: process.version },
      setup: { bytes, files: manifest.files.length, per_connection_cap_mb_s: CAP / MB, store: 's3rver 3.7.1 via a pacing proxy, 127.0.0.1, child process' },
      single_stream: { seconds: Number(singleSecs.toFixed(2)), mb_s: Number((bytes / MB / singleSecs).toFixed(1)) },
      parallel: runs,
      store_ceiling_uncapped_mb_s: Number(ceiling.toFixed(1)),
    };
    const slug = `${cpu.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase()}-${os.cpus().length}c`;
    const file = path.join(__dirname, '..', '..', '..', 'bench', 'results', `s3_download-${slug}.json`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  } finally {
    child.kill();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

void main().catch((e) => { process.stderr.write(`${e.stack ?? e}\n`); process.exit(1); });
