// Executes every notebook of notebooks-ts/ headless in local mode, as a user would run it:
// Debian's `jupyter nbconvert --execute` with the tslab kernel. A failing cell fails the test, and
// so does a process the notebook started and left running, or its scratch folder left behind.
//
// Needs /usr/bin/python3 with nbconvert, nbclient and jupyter_client (apt: python3-nbclient
// jupyter-nbconvert jupyter-client python3-ipython) and tslab (node_modules/.bin/tslab, or
// GYRE_TSLAB). Outside CI the test is skipped, with a message, when either is missing. Executing
// them takes about a minute: they are in the slow set (test/slow.ts), which CI runs.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SLOW, describeSlow } from '../slow';

const ROOT = path.resolve(__dirname, '..', '..');
const NOTEBOOKS = path.join(ROOT, 'notebooks-ts');
const PYTHON = '/usr/bin/python3';   // Debian's, with the apt packages; not whatever python3 is first on PATH
const TSLAB = process.env.GYRE_TSLAB ?? path.join(ROOT, 'node_modules', '.bin', 'tslab');
const NOTEBOOK_TIMEOUT_S = 150;

function missing(): string | undefined {
  const py = spawnSync(PYTHON, ['-c', 'import nbconvert, nbclient, jupyter_client'], { encoding: 'utf8' });
  if (py.status !== 0) {
    return `${PYTHON} cannot import nbconvert/nbclient/jupyter_client ` +
      '(apt-get install -y --no-install-recommends python3-nbclient jupyter-nbconvert jupyter-client python3-ipython)';
  }
  if (!fs.existsSync(TSLAB)) return `no tslab kernel at ${TSLAB} (npm i -E -D tslab@1.0.22, or set GYRE_TSLAB)`;
  return undefined;
}

const why = missing();
const notebooks = fs.readdirSync(NOTEBOOKS).filter((f) => f.endsWith('.ipynb')).sort();
if (SLOW && why && !process.env.CI) {
  // Said once, loudly, so that a skipped run is not mistaken for a passing one.
  console.warn(`notebooks: SKIPPED: ${why}`);
}
const maybe = !SLOW ? describeSlow : why && !process.env.CI ? describe.skip : describe;

function alive(pid: number): boolean {
  try {
    // A zombie (killed, not yet reaped by an init that does not reap) counts as gone.
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The stream output of each cell, from nbconvert's --debug log (tslab reports a cell's error
 *  there, not in the execute_reply that nbconvert's own message shows). */
function cellStreams(log: string): string {
  return log.split('\n').filter((l) => l.includes("content: {'name': 'std")).slice(-12).join('\n');
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c: Buffer) => { out += c.toString('utf8'); });
    p.stderr.on('data', (c: Buffer) => { out += c.toString('utf8'); });
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, out }));
  });
}

test('there are the four notebooks, committed without outputs', () => {
  expect(notebooks).toEqual(['01-deploy.ipynb', '02-invoke.ipynb', '03-bring-your-own-model.ipynb', '04-benchmark.ipynb']);
  for (const f of notebooks) {
    const nb = JSON.parse(fs.readFileSync(path.join(NOTEBOOKS, f), 'utf8'));
    expect(nb.metadata.kernelspec.name).toBe('tslab');
    for (const cell of nb.cells.filter((c: { cell_type: string }) => c.cell_type === 'code')) {
      expect({ f, outputs: cell.outputs, count: cell.execution_count }).toEqual({ f, outputs: [], count: null });
    }
  }
});

maybe('notebooks-ts (tslab, local mode)', () => {
  let work: string;
  let jupyterPath: string;

  beforeAll(() => {
    if (why) throw new Error(`the notebooks cannot run in CI: ${why}`);
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-notebooks-test-'));
    // A kernel spec of our own, so nothing is installed for the user and parallel runs do not meet.
    const prefix = path.join(work, 'jupyter');
    const r = spawnSync(TSLAB, ['install', `--python=${PYTHON}`, `--binary=${TSLAB}`, `--prefix=${prefix}`], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tslab install failed:\n${r.stdout}${r.stderr}`);
    jupyterPath = path.join(prefix, 'share', 'jupyter');
  });

  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test.each(notebooks)('%s runs to the end and leaves nothing running', async (name) => {
    const pids = path.join(work, `${name}.pids`);
    const tmp = fs.mkdtempSync(path.join(work, 'tmp-'));
    const env = {
      ...process.env,
      JUPYTER_PATH: jupyterPath,
      GYRE_LOCAL: '1',                 // whatever credentials this machine has
      GYRE_NOTEBOOK_PIDS: pids,        // notebooks-ts/lib/local.ts lists the processes it starts
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      TMPDIR: tmp,                     // where the notebook's scratch folder goes, to check it is removed
    };
    const t0 = Date.now();
    const { code, out } = await run(PYTHON, ['-m', 'nbconvert', '--to', 'notebook', '--execute', '--debug',
      `--ExecutePreprocessor.timeout=${NOTEBOOK_TIMEOUT_S}`, '--output-dir', path.join(work, 'out'), path.join(NOTEBOOKS, name)], env, NOTEBOOKS);
    const seconds = (Date.now() - t0) / 1000;
    const left: number[] = [];
    if (fs.existsSync(pids)) {
      const listed = fs.readFileSync(pids, 'utf8').split('\n').filter(Boolean).map(Number);
      for (let i = 0; i < 50 && listed.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
      for (const pid of listed.filter(alive)) {
        left.push(pid);
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
    }
    if (code !== 0) {
      const error = out.slice(out.indexOf('CellExecutionError')).slice(0, 3000);
      throw new Error(`${name} failed after ${seconds.toFixed(1)} s:\n${error}\n--- cell output (last lines) ---\n${cellStreams(out)}`);
    }
    console.log(`${name}: ${seconds.toFixed(1)} s`);
    const leftFiles = fs.readdirSync(tmp).filter((f) => f.startsWith('gyre-notebook-'));
    expect({ name, leftRunning: left, leftFiles }).toEqual({ name, leftRunning: [], leftFiles: [] });
  }, (NOTEBOOK_TIMEOUT_S + 60) * 1000);
});
