// SIGTERM with a short drain timeout while non-streaming requests run: at the deadline each gets
// a JSON 503 in its API's error shape before the socket closes, never a reset connection; a
// stream ends with an error event. `gyre serve` runs in a child process.
import { metricValue, startChild, watchPing } from './child_server';
import { waitFor } from './helpers';

jest.setTimeout(120_000);

test('at the drain deadline, in-flight non-streaming requests get a JSON 503 in their API shape', async () => {
  const srv = await startChild(['--drain-timeout', '2']);
  const ping = watchPing(srv.url);
  const bodies: [string, unknown][] = [
    ...Array.from({ length: 5 }, (): [string, unknown] => ['/invocations', { inputs: 'Once upon a time', parameters: { max_new_tokens: 2000, ignore_eos: true } }]),
    ...Array.from({ length: 3 }, (): [string, unknown] => ['/invocations', { prompt: 'Once', n: 16, max_tokens: 2000, ignore_eos: true }]),
    ...Array.from({ length: 2 }, (): [string, unknown] => ['/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi' }], n: 16, max_tokens: 2000, ignore_eos: true }]),
  ];
  const replies = bodies.map(([route, body]) => fetch(`${srv.url}${route}`, { method: 'POST', body: JSON.stringify(body) })
    .then(async (r) => ({ status: r.status, body: await r.json() as Record<string, unknown> }), (e: Error) => ({ status: 0, body: { error: String((e.cause as Error)?.message ?? e) } })));
  await waitFor(async () => (await metricValue(srv.url, 'gyre_num_requests_running')) === 5 + 3 * 16 + 2 * 16, 30_000, 'all requests running');
  const pingStats = await ping.stop();
  srv.proc.kill('SIGTERM');
  const got = await Promise.all(replies);
  expect(await srv.exited).toBe(0);
  for (const [i, r] of got.entries()) {
    const tgi = i < 5;
    expect([i, r.status]).toEqual([i, 503]);
    if (tgi) expect(r.body).toEqual({ error: expect.stringMatching(/aborted/), error_type: 'unhealthy' });
    else expect(r.body.error).toMatchObject({ type: 'service_unavailable_error', message: expect.stringMatching(/aborted/) });
  }
  expect(pingStats.failed).toBe(0);
});
