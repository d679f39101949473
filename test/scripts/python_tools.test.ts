// native/scripts' Python tools without a GPU (no torch here): every module imports, every entry
// point answers --help, hf_peer.py's dry run gives the same plan and prompt ids, its closed loop
// runs against a fake continuous-batching manager, and summarise_gpu.py turns a sample of
// gyre_bench and hf_peer JSON into the same summary and table as before the tools were split
// (test/fixtures/gpu-summary/expected.*, written by the unsplit script).
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const SCRIPTS = path.join(__dirname, '../../native/scripts');
const FIXTURES = path.join(__dirname, '../fixtures/gpu-summary');

function python(args: string[], cwd = SCRIPTS): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('python3', args, { cwd, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('every module of the tools imports without torch, numpy or matplotlib', () => {
  const modules = ['hf_compare', 'hf_peer', 'summarise_gpu'];
  for (const pkg of ['peer', 'summary']) {
    for (const f of fs.readdirSync(path.join(SCRIPTS, pkg)).filter((n) => n.endsWith('.py')).sort()) {
      modules.push(f === '__init__.py' ? pkg : `${pkg}.${f.slice(0, -3)}`);
    }
  }
  expect(modules).toEqual(expect.arrayContaining(['peer.workload', 'peer.shapes', 'summary.sections', 'summary.plot']));
  const code = `import importlib, sys\nfor m in ${JSON.stringify(modules)}: importlib.import_module(m)\n` +
    `print(sorted(m for m in ('torch', 'numpy', 'matplotlib', 'transformers') if m in sys.modules))`;
  const r = python(['-c', code]);
  expect(r.stderr).toBe('');
  expect(r.stdout.trim()).toBe('[]');
});

test.each(['hf_peer.py', 'summarise_gpu.py', 'hf_compare.py'])('%s --help', (script) => {
  const r = python([script, '--help']);
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(new RegExp(`^usage: ${script.replace('.', '\\.')}`));
});

test('hf_peer.py --dry-run: the same level plan, trace and prompt ids as gyre_bench\'s arithmetic gave before', () => {
  const out = execFileSync('python3', ['hf_peer.py', '--dry-run', '--json', path.join(os.tmpdir(), 'unused.json'),
    '--users', '1,4,16', '--trace-size', '64'], { cwd: SCRIPTS, encoding: 'utf8' });
  expect(JSON.parse(out)).toEqual(JSON.parse(fs.readFileSync(path.join(FIXTURES, 'hf-peer-dry-run.json'), 'utf8')));
});

test('hf_peer\'s closed loop against a fake continuous-batching manager: every request once, at its own length; failures and short outputs counted', () => {
  const code = `
import inspect, json, types
from peer.trace import generate_trace
from peer.workload import Workload

class Result:
    def __init__(self, rid, n, t):
        self.request_id, self.generated_tokens, self.error = rid, [7] * n, None
        self.created_time, self.timestamps, self.lifespan = t, [t + 0.01 * (i + 1) for i in range(n)], (t, t + 0.01 * n)

class Manager:  # answers each request at once, in order; r5 fails, r7 comes one token short
    def __init__(self):
        self.queue, self.seen = [], []
    def add_request(self, input_ids, request_id, max_new_tokens, record_timestamps=False, eos_token_id=None):
        self.seen.append((request_id, len(input_ids), max_new_tokens))
        r = Result(request_id, max_new_tokens - (request_id == 'r7'), float(len(self.seen)))
        if request_id == 'r5':
            r.error = 'boom'
        self.queue.append(r)
    def start(self):
        pass
    def get_result(self, timeout=None):
        return self.queue.pop(0) if self.queue else None

trace = generate_trace(20261201, 16)
wl = Workload(None, types.SimpleNamespace(config=None), trace, None, {})
wl.manager = Manager()
wl.add_params = inspect.signature(wl.manager.add_request).parameters
res = wl.run_level(4, 10, 3)
print(json.dumps(dict(res=res, seen=wl.manager.seen, want=[(f"r{k}", trace[k % 16][0], trace[k % 16][1]) for k in range(3, 13)])))
`;
  const r = python(['-c', code]);
  expect(r.stderr).toBe('');
  const { res, seen, want } = JSON.parse(r.stdout) as { res: Record<string, unknown>; seen: unknown[]; want: [string, number, number][] };
  expect(seen).toEqual(want);
  expect(res).toMatchObject({ users: 4, requests: 10, completed: 9, errors: 1, first_error: 'boom', wrong_length: 1 });
  expect(res.output_tokens).toBe(want.filter((w) => w[0] !== 'r5').reduce((s, w) => s + w[2], 0) - 1);
  expect(res.mean_ttft_s).toBeCloseTo(0.01, 9);
});

test('summarise_gpu.py on sample gyre_bench and hf_peer JSON: the same JSON and table as the unsplit script', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gpu-summary-'));
  try {
    const r = python([path.join(SCRIPTS, 'summarise_gpu.py'), '--gyre', '7b=gyre-7b.json', '--gyre', '13b-int8=gyre-13b-int8.json',
      '--gyre', 'missing.json', '--peer', 'peer.json', '--out-dir', out, '--date', '20261206', '--commit', 'abc1234', '--no-plot'],
    FIXTURES);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.split(out).join('<out>')).toBe(fs.readFileSync(path.join(FIXTURES, 'expected.txt'), 'utf8'));
    // Byte for byte: the keys' order is part of the format.
    expect(fs.readFileSync(path.join(out, 'gpu-20261206.json'), 'utf8'))
      .toBe(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8'));
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
