// native/scripts/device-check.sh dry-run here with fake binaries, a fake nvidia-smi and a fake
// python3, at budgets of a few seconds: each child is capped, steps past the budget are skipped,
// the results JSON exists after every step, and the exit status says wrong (1), no GPU (2),
// incomplete (3) or all well (0).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const SCRIPT = path.join(__dirname, '../../native/scripts/device-check.sh');
const TESTS = ['cuda_kernels_test', 'cuda_attention_test', 'cuda_int8_test', 'cuda_forward_test', 'cuda_engine_test', 'cuda_graph_test', 'cuda_sampler_test',
  'int8_13b_test'];

let dir: string;

function write(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text, { mode: 0o755 });
}

// A fake C++ test: FAKE_<name>=fail|hang|skip|<nothing> picks its behaviour.
const fakeTest = `#!/usr/bin/env bash
name=$(basename "$0"); eval "mode=\\\${FAKE_$name:-}"
echo "device: Fake GPU (sm_90)"
case "$mode" in
  fail) echo "FAIL something"; echo "3 passed, 1 failed"; exit 1 ;;
  hang) exec sleep 30 ;;
  skip) echo "skipped: no CUDA device"; exit 77 ;;
esac
echo "4 passed, 0 failed"
`;
// A fake gyre_bench: writes the JSON it is asked for (and the trace); FAKE_BENCH=hang hangs.
const fakeBench = `#!/usr/bin/env bash
while [ $# -gt 0 ]; do case "$1" in --json) json=$2; shift ;; --write-trace) echo '{}' > "$2"; shift ;; esac; shift; done
[ -n "\${json:-}" ] && echo '{"phases": {}}' > "$json"
[ "\${FAKE_BENCH:-}" = hang ] && exec sleep 30
exit 0
`;
// A fake python3 for hf_compare.py, hf_peer.py and summarise_gpu.py.
const fakePython = `#!/usr/bin/env bash
script=$(basename "$1"); shift
while [ $# -gt 0 ]; do case "$1" in --json) json=$2; shift ;; --out-dir) outdir=$2; shift ;; esac; shift; done
case "$script" in
  hf_compare.py) echo '{"rows": []}' > "$json"; echo "model           dtype result"; echo "llama2-7b-2l    f16   ok"
                 [ "\${FAKE_HF:-}" = hang ] && exec sleep 30; exit "\${FAKE_HF_RC:-0}" ;;
  hf_peer.py) echo '{}' > "$json" ;;
  summarise_gpu.py) echo '{}' > "$outdir/gpu-fake.json"; echo "summary table" ;;
esac
`;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'device-check-'));
  for (const t of TESTS) write(path.join(dir, 'bin', t), fakeTest);
  write(path.join(dir, 'bin', 'gyre_logits_dump'), '#!/bin/sh\nexit 0\n');
  write(path.join(dir, 'bin', 'gyre_bench'), fakeBench);
  write(path.join(dir, 'gpu', 'nvidia-smi'), `#!/bin/sh
case "$*" in *compute_cap,driver*) echo "Fake GPU, 9.0, 550.00, 81559 MiB" ;; *compute_cap*) echo "9.0" ;; *name*) echo "Fake GPU" ;; esac
`);
  write(path.join(dir, 'nogpu', 'nvidia-smi'), '#!/bin/sh\necho "NVIDIA-SMI has failed" >&2\nexit 9\n');
  write(path.join(dir, 'python3'), fakePython);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Run { status: number | null; out: string; json: { done: boolean; seconds: number; results: Record<string, string> } }

function run(pass: string, env: Record<string, string>, gpu = 'gpu'): Run {
  const out = fs.mkdtempSync(path.join(dir, 'out-'));
  const r = spawnSync('bash', [SCRIPT, pass], {
    encoding: 'utf8',
    env: {
      PATH: `${path.join(dir, gpu)}:/usr/bin:/bin`, HOME: dir, OUT: out, GYRE_CHECK_BIN: path.join(dir, 'bin'),
      GYRE_CHECK_PYTHON: path.join(dir, 'python3'), GYRE_CHECK_CUBLASLT: '0', ...env,
    },
  });
  const name = pass.replace(/^--/, '');
  return { status: r.status, out: r.stdout + r.stderr, json: JSON.parse(fs.readFileSync(path.join(out, `${name}.json`), 'utf8')) };
}

test('correctness: every CUDA test and hf_compare; all passing exits 0', () => {
  const r = run('--correctness', { GYRE_CHECK_BUDGET_S: '20', GYRE_CHECK_CHILD_S: '5' });
  expect(r.json.done).toBe(true);
  expect(Object.keys(r.json.results)).toEqual([...TESTS.map((t) => `mma ${t}`), 'hf_compare']);
  for (const v of Object.values(r.json.results)) expect(v).toMatch(/^ok/);
  expect(r.json.results['mma cuda_kernels_test']).toBe('ok 4 passed, 0 failed');
  expect(r.out).toMatch(/llama2-7b-2l +f16 +ok/);  // hf_compare's table last
  expect(r.status).toBe(0);
});

test('correctness: a wrong result, a hung child (killed at its cap) and a test that saw no GPU each fail', () => {
  const r = run('--correctness', {
    GYRE_CHECK_BUDGET_S: '30', GYRE_CHECK_CHILD_S: '2',
    FAKE_cuda_kernels_test: 'fail', FAKE_cuda_forward_test: 'hang', FAKE_cuda_int8_test: 'skip',
  });
  expect(r.json.results['mma cuda_kernels_test']).toBe('FAIL rc=1 3 passed, 1 failed');
  expect(r.json.results['mma cuda_forward_test']).toBe('FAIL timeout 2s');
  expect(r.json.results['mma cuda_int8_test']).toBe('FAIL skipped: the test saw no GPU');
  expect(r.json.results['mma cuda_engine_test']).toMatch(/^ok/);  // the run goes on after a failure
  expect(r.json.results.hf_compare).toMatch(/^ok/);
  expect(r.status).toBe(1);
});

test('correctness: hf_compare failing fails the pass; hf_compare out of time is incomplete (3)', () => {
  expect(run('--correctness', { GYRE_CHECK_BUDGET_S: '20', GYRE_CHECK_CHILD_S: '5', FAKE_HF_RC: '1' }).status).toBe(1);
  const r = run('--correctness', { GYRE_CHECK_BUDGET_S: '20', GYRE_CHECK_CHILD_S: '5', FAKE_HF_RC: '3' });
  expect(r.json.results.hf_compare).toMatch(/^skipped/);
  expect(r.status).toBe(3);
});

test('correctness: the budget bounds the pass; the steps it does not reach are skipped, the JSON kept', () => {
  const r = run('--correctness', {
    GYRE_CHECK_BUDGET_S: '8', GYRE_CHECK_CHILD_S: '3', FAKE_cuda_kernels_test: 'hang', FAKE_cuda_attention_test: 'hang',
  });
  expect(r.json.results['mma cuda_kernels_test']).toBe('FAIL timeout 3s');
  expect(r.json.results['mma cuda_attention_test']).toMatch(/^FAIL timeout [1-3]s$/);
  expect(r.json.results.hf_compare).toBe('skipped (time budget)');
  expect(r.json.seconds).toBeLessThanOrEqual(8 + 10);  // the budget, plus a kill's grace and slack for a busy machine
  expect(r.status).toBe(1);
});

test('correctness: no visible GPU is an error (2), with the JSON saying so', () => {
  const r = run('--correctness', { GYRE_CHECK_BUDGET_S: '20' }, 'nogpu');
  expect(r.json.results).toEqual({ gpu: 'FAIL no GPU visible (nvidia-smi lists none)' });
  expect(r.status).toBe(2);
});

test('speed: the benchmarks, the peer and the summary; a hung step is cut and the rest kept', () => {
  const ok = run('--speed', { GYRE_CHECK_BUDGET_S: '300' });
  expect(Object.keys(ok.json.results)).toEqual(['bench trace', 'bench 7b', 'bench workload-7b', 'bench 13b-int8',
    'bench kv-mistral-7b', 'bench transformers', 'gpu summary']);
  for (const v of Object.values(ok.json.results)) expect(v).toMatch(/^ok/);
  expect(ok.status).toBe(0);
  const cut = run('--speed', { GYRE_CHECK_BUDGET_S: '8', FAKE_BENCH: 'hang' });
  expect(cut.json.results['bench trace']).toMatch(/^FAIL timeout/);
  expect(Object.values(cut.json.results).some((v) => v === 'skipped (time budget)')).toBe(true);
  expect(cut.json.done).toBe(true);
  expect(cut.status).toBe(1);
});

test('usage errors exit 2', () => {
  expect(spawnSync('bash', [SCRIPT, '--bogus'], { encoding: 'utf8' }).status).toBe(2);
});
