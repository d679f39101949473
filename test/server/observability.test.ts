// /metrics (Prometheus, gyre_*), the EMF log lines CloudWatch turns into metrics, and the
// one-line-per-request log.
import { type TestServer, metric, post, startTestServer, waitFor } from './helpers';

let t: TestServer;
beforeAll(async () => { t = await startTestServer({ emfIntervalMs: 200 }); });
afterAll(async () => { await t?.close(); });

test('/metrics: request counts, latency histograms, engine gauges and counters', async () => {
  const before = await metric(t.url, 'gyre_generation_tokens_total');
  // The same 40-token prompt twice: the second reuses its full KV blocks from the prefix cache.
  const prompt = 'one two three four five six seven eight nine ten '.repeat(4);
  await post(`${t.url}/generate`, { inputs: prompt, parameters: { max_new_tokens: 7 } });
  await post(`${t.url}/v1/completions`, { prompt, max_tokens: 5 });
  await post(`${t.url}/generate`, { inputs: 'x', parameters: { temperature: -1 } });
  const text = await (await fetch(`${t.url}/metrics`)).text();
  expect(text).toMatch(/gyre_requests_total\{route="\/generate",status="200"\} 1/);
  expect(text).toMatch(/gyre_requests_total\{route="\/generate",status="422"\} 1/);
  expect(text).toMatch(/gyre_requests_total\{route="\/v1\/completions",status="200"\} 1/);
  for (const h of ['gyre_e2e_request_latency_seconds', 'gyre_time_to_first_token_seconds', 'gyre_time_per_output_token_seconds']) {
    expect(text).toMatch(new RegExp(`${h}_count 2\\n`));
  }
  for (const g of ['gyre_num_requests_running', 'gyre_num_requests_waiting', 'gyre_kv_blocks_used', 'gyre_kv_blocks_total',
    'gyre_kv_cache_usage_ratio', 'gyre_prompt_tokens_total', 'gyre_preemptions_total', 'gyre_prefix_cache_hit_tokens_total']) {
    expect(text).toMatch(new RegExp(`^${g} \\d`, 'm'));
  }
  expect(await metric(t.url, 'gyre_generation_tokens_total') - before).toBe(12);
  expect(await metric(t.url, 'gyre_kv_blocks_total')).toBeGreaterThan(0);
  expect(await metric(t.url, 'gyre_prefix_cache_hit_tokens_total')).toBeGreaterThan(0);
});

test('EMF lines: CloudWatch metric definitions with values', async () => {
  await post(`${t.url}/generate`, { inputs: 'emf', parameters: { max_new_tokens: 3 } });
  await waitFor(() => t.logs.some((l) => l.msg === 'metrics' && (l.Requests as number) > 0), 5000, 'an EMF line');
  const line = t.logs.filter((l) => l.msg === 'metrics' && (l.Requests as number) > 0).pop()!;
  const aws = line._aws as { Timestamp: number; CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[] };
  expect(aws.Timestamp).toBeGreaterThan(Date.now() - 60_000);
  const def = aws.CloudWatchMetrics[0];
  expect(def.Namespace).toBe('Gyre');
  expect(def.Dimensions).toEqual([['Model']]);
  expect(line.Model).toBe('demo');
  const names = def.Metrics.map((m) => m.Name);
  expect(names).toEqual(expect.arrayContaining(['Requests', 'E2ELatency', 'TimeToFirstToken', 'RunningRequests', 'KvCacheUsage', 'GenerationTokens']));
  for (const name of names) expect(line[name]).toBeDefined();   // every declared metric has a value
  expect(Array.isArray(line.E2ELatency)).toBe(true);
});

test('one log line per request with latency, TTFT, token counts and finish reason', async () => {
  await post(`${t.url}/invocations`, { inputs: 'log me', parameters: { max_new_tokens: 4 } }, { 'X-Amzn-SageMaker-Inference-Id': 'log-1' });
  await waitFor(() => t.logs.some((l) => (l.sagemaker as Record<string, string> | undefined)?.['inference-id'] === 'log-1'), 2000, 'the log line');
  const line = t.logs.find((l) => (l.sagemaker as Record<string, string> | undefined)?.['inference-id'] === 'log-1')!;
  expect(line).toMatchObject({
    level: 'info', msg: 'request', method: 'POST', route: '/invocations', status: 200, api: 'tgi', stream: false,
    prompt_tokens: 3, completion_tokens: 4, finish_reason: 'length',
  });
  expect(line.latency_ms).toEqual(expect.any(Number));
  expect(line.ttft_ms).toEqual(expect.any(Number));
  expect(line.ttft_ms as number).toBeLessThanOrEqual(line.latency_ms as number);
});

test('the log line names the reason itself: a stop token id is stop_token, where TGI says stop_sequence', async () => {
  const base = await post(`${t.url}/generate`, { inputs: 'log me', parameters: { max_new_tokens: 4, details: true } });
  const stopId: number = base.json.details.tokens[1].id;
  const r = await post(`${t.url}/invocations`, { inputs: 'log me', parameters: { max_new_tokens: 4, stop_token_ids: [stopId], details: true } },
    { 'X-Amzn-SageMaker-Inference-Id': 'log-2' });
  expect(r.json[0].details.finish_reason).toBe('stop_sequence');
  await waitFor(() => t.logs.some((l) => (l.sagemaker as Record<string, string> | undefined)?.['inference-id'] === 'log-2'), 2000, 'the log line');
  const line = t.logs.find((l) => (l.sagemaker as Record<string, string> | undefined)?.['inference-id'] === 'log-2')!;
  expect(line).toMatchObject({ finish_reason: 'stop_token' });
});
