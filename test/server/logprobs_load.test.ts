// /ping stays responsive while 24 clients stream completions with n=4 and logprobs 20; in the slow
// set (test/slow.ts). The bound is loose (the machine is shared); bench/ping_under_load.ts prints p50/p99.
import { logprobsLoad, pingWhile } from '../../bench/ping_under_load';
import { describeSlow } from '../slow';
import { type ChildServer, startChild } from './child_server';

jest.setTimeout(120_000);

let srv: ChildServer;
afterAll(async () => { await srv?.stop(); });

describeSlow('logprobs load', () => {
  test('/ping answers within 2 s (p99 under 1 s) under 24 streaming clients with n=4, logprobs 20', async () => {
    srv = await startChild();
    let load: { requests: number; errors: number } | undefined;
    const stats = await pingWhile(srv.url, logprobsLoad(srv.url, 24, 20_000, { maxTokens: 512 }).then((r) => { load = r; }));
    process.stdout.write(`/ping under logprobs load: ${JSON.stringify(stats)}; ${JSON.stringify(load)}\n`);
    expect(load!.errors).toBe(0);
    expect(load!.requests).toBeGreaterThanOrEqual(24);
    expect(stats.failed).toBe(0);
    expect(stats.max).toBeLessThan(2000);
    expect(stats.p99).toBeLessThan(1000);
  });
});
