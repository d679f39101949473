// 64 concurrent streams, a quarter of them dropped by the client mid-stream: every other one gets
// exactly the tokens it gets alone (seeded sampling), the dropped ones are aborted in the engine
// (they stop generating), and the KV blocks in use return to 0.
import { type TestServer, metric, post, readSse, startTestServer, waitFor } from './helpers';

let t: TestServer;
beforeAll(async () => { t = await startTestServer(); });
afterAll(async () => { await t?.close(); });

const N = 64;
const TOKENS = 32;
const LONG = 2000;   // what a dropped request would generate if it were not aborted
const EARLY = LONG / 2;  // aborted ones stop well before (loose: a loaded CI machine reacts slowly)
const dropped = (i: number) => i % 4 === 0;

function body(i: number) {
  return {
    inputs: `Story number ${i}: once upon a time`,
    parameters: { max_new_tokens: dropped(i) ? LONG : TOKENS, do_sample: true, seed: 1000 + i, ignore_eos: true, details: true },
  };
}

test('64 streams, 16 dropped mid-stream: the rest match their solo runs; KV blocks return to 0', async () => {
  // Alone: one at a time, not streamed.
  const alone: number[][] = [];
  for (let i = 0; i < N; i++) {
    if (dropped(i)) continue;
    const r = await post(`${t.url}/generate`, body(i));
    expect(r.status).toBe(200);
    alone[i] = r.json.details.tokens.map((x: { id: number }) => x.id);
    expect(alone[i]).toHaveLength(TOKENS);
  }
  const engine = t.server.context.host.model!.engine;
  const generatedBefore = engine.stats().numGeneratedTokens;

  const results = await Promise.all(Array.from({ length: N }, async (_, i) => {
    const ac = new AbortController();
    const res = await fetch(`${t.url}/generate_stream`, { method: 'POST', body: JSON.stringify(body(i)), signal: ac.signal });
    expect(res.status).toBe(200);
    const ids: number[] = [];
    let finish: string | undefined;
    await readSse(res, (data) => {
      const e = JSON.parse(data);
      ids.push(e.token.id);
      if (e.details) finish = e.details.finish_reason;
      if (dropped(i) && ids.length === 3) return false;
    });
    if (dropped(i)) ac.abort();
    return { ids, finish };
  }));

  results.forEach((r, i) => {
    if (dropped(i)) expect(r.ids).toHaveLength(3);
    else expect({ i, ids: r.ids, finish: r.finish }).toEqual({ i, ids: alone[i], finish: 'length' });
  });

  await waitFor(async () => (await metric(t.url, 'gyre_kv_blocks_used')) === 0, 10_000, 'KV blocks to be released');
  expect(await metric(t.url, 'gyre_num_requests_running')).toBe(0);
  expect(engine.stats().numBlocksUsed).toBe(0);
  // The dropped requests stopped early: far fewer tokens than LONG each.
  const generated = engine.stats().numGeneratedTokens - generatedBefore;
  expect(generated).toBeLessThan(48 * TOKENS + 16 * EARLY);
  await waitFor(() => t.logs.filter((l) => l.msg === 'request' && l.status === 499).length === 16, 5000, 'the dropped requests\' log lines');
  for (const line of t.logs.filter((l) => l.msg === 'request' && l.status === 499)) {
    expect(line).toMatchObject({ finish_reason: 'abort', route: '/generate_stream' });
    expect(line.completion_tokens as number).toBeLessThan(EARLY);
  }
});
