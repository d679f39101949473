// `gyre serve` on a model folder whose chat template and tokenizer pass `validate` but misbehave on
// some requests: a template that loops for ever on a long conversation, one that
// builds a huge list, a tokenizer regex that backtracks on one prompt. Each such request gets a
// 500 naming the limit; /ping answers within 2 s throughout; normal requests keep working; and
// SIGTERM stops the server while a worker is stuck. The server is a child process, so a hang is
// a timeout here, not a stuck suite.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI, demoModel, freePort, type Proc, start, stop, waitFor200 } from '../container/helpers';

const LOOP = '{% if messages | length > 3 %}{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{% endif %}';
const HUGE = '{% if messages[0].content == "huge" %}{% set ns = namespace(l=[1, 2, 3, 4, 5, 6, 7, 8]) %}' +
  '{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}{% endif %}';

let tmp: string;
let proc: Proc | undefined;
let url: string;
let template: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-hostile-serve-'));
  const dir = demoModel(path.join(tmp, 'model'));
  const tcFile = path.join(dir, 'tokenizer_config.json');
  const tc = JSON.parse(fs.readFileSync(tcFile, 'utf8'));
  template = tc.chat_template;
  tc.chat_template = `${LOOP}${HUGE}${template}`;
  fs.writeFileSync(tcFile, JSON.stringify(tc));
  // A Split regex that backtracks on runs of 'x' not followed by 'y' (no validate probe has them).
  const tokFile = path.join(dir, 'tokenizer.json');
  const tok = JSON.parse(fs.readFileSync(tokFile, 'utf8'));
  tok.pre_tokenizer = { type: 'Split', pattern: { Regex: '(x+x+)+y' }, behavior: 'Isolated', invert: false };
  fs.writeFileSync(tokFile, JSON.stringify(tok));
  const port = await freePort();
  proc = start(process.execPath, [CLI, 'serve', '--model', dir, '--port', String(port), '--backend', 'cpu'], {
    GYRE_MODEL: undefined, HF_MODEL_ID: undefined, SAGEMAKER_BIND_TO_PORT: undefined,
    GYRE_TEXT_TIMEOUT_MS: '3000', GYRE_TEXT_MEMORY_MB: '96',
  });
  url = `http://127.0.0.1:${port}`;
  await waitFor200(`${url}/ping`, 60_000, proc);
}, 90_000);

afterAll(async () => {
  if (proc) await stop(proc, 5000);
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Pings every 250 ms while p runs; returns p's result and the slowest ping (a failed ping: Infinity). */
async function pingingWhile<T>(p: Promise<T>): Promise<{ result: T; slowestPingMs: number; pings: number }> {
  let done = false;
  let slowest = 0;
  let pings = 0;
  const loop = (async () => {
    while (!done) {
      const t0 = performance.now();
      const ok = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(2000) }).then((r) => r.status === 200, () => false);
      slowest = Math.max(slowest, ok ? performance.now() - t0 : Infinity);
      pings++;
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  const result = await p.finally(() => { done = true; });
  await loop;
  return { result, slowestPingMs: slowest, pings };
}

async function chat(messages: { role: string; content: string }[]): Promise<{ status: number; body: { error: { message: string } } }> {
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages, max_tokens: 2, temperature: 0 }),
  });
  return { status: r.status, body: await r.json() as { error: { message: string } } };
}

const normal = [{ role: 'user', content: 'Hello' }];

test('a template that loops on a long conversation: 500 naming the time limit; /ping answers within 2 s', async () => {
  const long = [normal[0], { role: 'assistant', content: 'Hi' }, { role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'user', content: 'c' }];
  const { result, slowestPingMs, pings } = await pingingWhile(chat(long));
  expect(result.status).toBe(500);
  expect(result.body.error.message).toMatch(/did not finish within 3000 ms \(GYRE_TEXT_TIMEOUT_MS\)/);
  expect(pings).toBeGreaterThan(3);
  expect(slowestPingMs).toBeLessThan(2000);
  expect((await chat(normal)).status).toBe(200);
}, 60_000);

test('a template that builds a huge list: 500 naming the memory limit; the server lives on', async () => {
  const { result, slowestPingMs } = await pingingWhile(chat([{ role: 'user', content: 'huge' }]));
  expect(result.status).toBe(500);
  expect(result.body.error.message).toMatch(/heap \(GYRE_TEXT_MEMORY_MB\)|stopped its worker|GYRE_TEXT_TIMEOUT_MS/);
  expect(slowestPingMs).toBeLessThan(2000);
  expect(proc!.child.exitCode).toBeNull();
  expect((await chat(normal)).status).toBe(200);
}, 60_000);

test('a prompt that makes the tokenizer regex backtrack: 500 on both APIs; /ping answers within 2 s', async () => {
  const prompt = 'x'.repeat(40);
  const tgi = fetch(`${url}/invocations`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ inputs: prompt, parameters: { max_new_tokens: 2 } }),
  }).then(async (r) => ({ status: r.status, body: await r.json() as { error: string } }));
  const { result, slowestPingMs } = await pingingWhile(tgi);
  expect(result.status).toBe(500);
  expect(result.body.error).toMatch(/the tokenizer did not finish within 3000 ms/);
  expect(slowestPingMs).toBeLessThan(2000);
  const openai = await chat([{ role: 'user', content: prompt }]);
  expect(openai.status).toBe(500);
  expect((await chat(normal)).status).toBe(200);
}, 60_000);

test('SIGTERM stops the server while a worker is stuck', async () => {
  const stuck = chat([{ role: 'user', content: 'x'.repeat(40) }]).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 500));
  const t0 = Date.now();
  const code = await stop(proc!, 20_000);
  expect(Date.now() - t0).toBeLessThan(15_000);
  expect(code).not.toBe(-1);   // exited by itself, not by SIGKILL
  await stuck;
  proc = undefined;
}, 60_000);
