// native/scripts/hf_compare.py runs on a GPU machine (PyTorch, transformers); its judging is pure
// Python and is checked here: both sides against the fp32 reference, Gyre's error gated at
// max(threshold, K_HF x HF's own error), and the exit status of partial runs.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

const SCRIPTS = path.join(__dirname, '../../native/scripts');

// Evaluates Python expressions (h: the module) in one interpreter; their values as JSON.
function py(...exprs: string[]): unknown[] {
  const code = `import json, sys; sys.path.insert(0, ${JSON.stringify(SCRIPTS)}); import hf_compare as h; ` +
    `print(json.dumps([${exprs.join(', ')}]))`;
  return JSON.parse(execFileSync('python3', ['-c', code], { encoding: 'utf8' })) as unknown[];
}

test('imports without numpy or torch (they load only where used)', () => {
  expect(py(
    '[h.K_HF, h.THRESHOLD]',
  )).toEqual([
    [2, { f16: 5e-3, bf16: 2e-2 }],
  ]);
});

test('Gyre passes at or under the threshold, or under K_HF x HF\'s own error when that is larger', () => {
  expect(py(
    'h.judge_logits(3e-3, 1e-3, 5e-3)',
    'h.judge_logits(6e-3, 1e-3, 5e-3)',
    'h.judge_logits(9e-3, 5e-3, 5e-3)',
    'h.judge_logits(1.1e-2, 5e-3, 5e-3)',
    'h.judge_logits(float("inf"), 1e-3, 5e-3)',
    'h.judge_logits(float("nan"), 1e-3, 5e-3)',
    'h.judge_logits(4e-3, float("nan"), 5e-3)',
  )).toEqual([
    [true, 5e-3],  // under the threshold
    [false, 5e-3],  // HF exact: no excuse
    [true, 1e-2],  // as coarse as the dtype itself
    [false, 1e-2],  // worse than twice HF
    [false, 5e-3],
    [false, 5e-3],
    [true, 5e-3],  // a broken HF run lends no slack
  ]);
});

test('greedy tokens: equal until the first divergence, where each is in the other\'s top 5', () => {
  expect(py(
    'h.check_logprobs_close([1, 2, 3], [[1], [2], [3]], [1, 2, 3], [[1], [2], [3]])',
    'h.check_logprobs_close([1, 5, 3], [[1], [5, 2], [3]], [1, 2, 9], [[1], [2, 5], [9]])',
    'h.check_logprobs_close([1, 5], [[1], [5, 7]], [1, 2], [[1], [2, 5]])',
  )).toEqual([
    [true, null],
    [true, 1],
    [false, 1],
  ]);
});

test('exit status: 1 on any failure, 3 when rows were skipped for time, 0 only when all ran and passed', () => {
  expect(py(
    'h.summary_status([{"ok": True}, {"ok": True}])',
    'h.summary_status([{"ok": True}, {"ok": False}])',
    'h.summary_status([{"ok": True}, {"ok": False, "skipped": "time limit"}])',
    'h.summary_status([{"ok": False}, {"ok": False, "skipped": "time limit"}])',
    'h.summary_status([])',
  )).toEqual([
    0,
    1,
    3,
    1,
    1,
  ]);
});
