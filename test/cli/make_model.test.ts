// Runs the compiled CLI (dist/), as a user would.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SafetensorsFile } from '../../src/model/safetensors';

const ROOT = path.resolve(__dirname, '..', '..');
const MAIN = path.join(ROOT, 'dist', 'cli', 'main.js');

let tmp: string;
beforeAll(() => {
  execFileSync(path.join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'pipe' });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-cli-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function gyre(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, GYRE_DEBUG: '', ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));

describe('gyre CLI', () => {
  test('--help lists the commands', () => {
    const r = gyre(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['logits', 'generate', 'make-model']) expect(r.stdout).toContain(c);
  });

  test('each command documents its options', () => {
    const opts: Record<string, string[]> = {
      logits: ['--model', '--ids', '--out', '--backend', '--threads'],
      generate: ['--model', '--prompt', '--chat', '--prompts', '--out', '--max-tokens', '--temperature', '--top-p',
        '--top-k', '--min-p', '--seed', '--ignore-eos', '--max-concurrency', '--backend', '--threads'],
      'make-model': ['--shape', '--layers', '--dtype', '--seed', '--scale', '--out'],
    };
    for (const [cmd, flags] of Object.entries(opts)) {
      const r = gyre([cmd, '--help']);
      expect(r.code).toBe(0);
      for (const f of flags) expect(r.stdout).toContain(`${f} `);
    }
  });

  test('command modules are imported only when their command runs', () => {
    const src = fs.readFileSync(path.join(ROOT, 'src', 'cli', 'main.ts'), 'utf8');
    expect(src).not.toMatch(/^import .*commands\//m);
    expect(src).toMatch(/await import\('\.\/commands\/logits'\)|import\('\.\/commands\/logits'\)/);
    const loaded = execFileSync(process.execPath, ['-e',
      `require(${JSON.stringify(MAIN)}).buildProgram(); console.log(JSON.stringify(Object.keys(require.cache)))`],
    { encoding: 'utf8' });
    const files = JSON.parse(loaded) as string[];
    expect(files.some((f) => f.endsWith(path.join('dist', 'cli', 'main.js')))).toBe(true);
    expect(files.filter((f) => /[\\/](commands|model|engine)[\\/]|@huggingface/.test(f))).toEqual([]);
  });

  test('bad options are commander errors (exit 2)', () => {
    expect(gyre(['make-model', '--shape', 'huge', '--out', tmp]).code).toBe(2);
    expect(gyre(['make-model', '--shape', 'tiny', '--layers', '0', '--out', tmp]).code).toBe(2);
    expect(gyre(['make-model', '--shape', 'tiny']).code).toBe(2); // no --out
    expect(gyre(['logits', '--model', tmp, '--ids', '1,x', '--out', 'o.safetensors']).code).toBe(2);
    expect(gyre(['generate', '--model', tmp]).stderr).toMatch(/--prompt or --prompts/);
    expect(gyre(['generate', '--model', tmp, '--prompt', 'a', '--prompts', 'b.jsonl']).code).toBe(2);
  });

  test('errors thrown by a command: "gyre: <message>", exit 1, stack only with GYRE_DEBUG=1', () => {
    const file = path.join(tmp, 'a-file');
    fs.writeFileSync(file, '');
    const r = gyre(['make-model', '--shape', 'tiny', '--out', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`gyre: ${file} exists and is not a directory\n`);
    const d = gyre(['make-model', '--shape', 'tiny', '--out', file], { GYRE_DEBUG: '1' });
    expect(d.code).toBe(1);
    expect(d.stderr).toMatch(/^gyre: Error: .*not a directory\n\s+at /);
  });
});

describe('gyre make-model', () => {
  const make = (out: string, ...extra: string[]) => {
    const r = gyre(['make-model', '--shape', 'tiny', '--dtype', 'f16', '--out', path.join(tmp, out), ...extra]);
    expect(r.stderr).toMatch(/^gyre: wrote /m);
    expect(r.code).toBe(0);
    return path.join(tmp, out);
  };

  test('tiny f16: config and tensors', () => {
    const dir = make('tiny', '--seed', '7');
    expect(readJson(path.join(dir, 'config.json'))).toMatchObject({
      architectures: ['LlamaForCausalLM'], hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4,
      num_key_value_heads: 2, intermediate_size: 176, vocab_size: 32000, tie_word_embeddings: true, torch_dtype: 'float16',
    });
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) expect(fs.existsSync(path.join(dir, f))).toBe(true);
    const st = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
    expect(st.names()).toHaveLength(1 + 2 * 9 + 1);
    for (const t of st.tensors.values()) expect(t.dtype).toBe('F16');
    const shape = (n: string) => st.info(n).shape;
    expect(shape('model.embed_tokens.weight')).toEqual([32000, 64]);
    expect(shape('model.layers.0.self_attn.q_proj.weight')).toEqual([64, 64]);
    expect(shape('model.layers.1.self_attn.k_proj.weight')).toEqual([32, 64]);
    expect(shape('model.layers.1.self_attn.v_proj.weight')).toEqual([32, 64]);
    expect(shape('model.layers.0.self_attn.o_proj.weight')).toEqual([64, 64]);
    expect(shape('model.layers.0.mlp.gate_proj.weight')).toEqual([176, 64]);
    expect(shape('model.layers.0.mlp.down_proj.weight')).toEqual([64, 176]);
    expect(shape('model.layers.1.post_attention_layernorm.weight')).toEqual([64]);
    expect(shape('model.norm.weight')).toEqual([64]);
  });

  test('deterministic: the same seed gives the same bytes, another seed does not', () => {
    const bytes = (dir: string) => fs.readFileSync(path.join(dir, 'model.safetensors'));
    const a = bytes(make('seed7a', '--seed', '7'));
    expect(a.equals(bytes(make('seed7b', '--seed', '7')))).toBe(true);
    expect(a.equals(bytes(make('seed8', '--seed', '8')))).toBe(false);
    expect(a.equals(bytes(make('seed7scaled', '--seed', '7', '--scale', '2')))).toBe(false);
  });

  test('the bundled demo model is what `npm run make-demo` makes', () => {
    const dir = make('demo', '--seed', '7');
    const demo = path.join(ROOT, 'models', 'demo');
    for (const f of ['model.safetensors', 'config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) {
      expect(fs.readFileSync(path.join(dir, f)).equals(fs.readFileSync(path.join(demo, f)))).toBe(true);
    }
  });

  test('a non-empty --out is refused, as quantize does; --force replaces the model files', () => {
    const dir = path.join(tmp, 'occupied');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'mine');
    const r = gyre(['make-model', '--shape', 'tiny', '--out', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`gyre: ${dir}: exists and is not empty (give a new or empty folder, or --force to replace the model files in it)\n`);
    expect(fs.readdirSync(dir)).toEqual(['notes.txt']);
    expect(gyre(['make-model', '--shape', 'tiny', '--out', dir, '--force']).code).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'notes.txt'), 'utf8')).toBe('mine');
    expect(fs.existsSync(path.join(dir, 'model.safetensors'))).toBe(true);
    fs.mkdirSync(path.join(tmp, 'empty'));
    expect(gyre(['make-model', '--shape', 'tiny', '--out', path.join(tmp, 'empty')]).code).toBe(0);
  });

  test('--shape 100m --layers 1', () => {
    const dir = path.join(tmp, '100m');
    const r = gyre(['make-model', '--shape', '100m', '--layers', '1', '--dtype', 'bf16', '--seed', '1', '--out', dir]);
    expect(r.code).toBe(0);
    expect(readJson(path.join(dir, 'config.json'))).toMatchObject({
      hidden_size: 768, num_hidden_layers: 1, num_attention_heads: 12, num_key_value_heads: 12,
      intermediate_size: 2048, max_position_embeddings: 1024, torch_dtype: 'bfloat16',
    });
    const st = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
    expect(st.names()).toHaveLength(1 + 9 + 1);
    expect(st.info('model.layers.0.mlp.up_proj.weight')).toMatchObject({ dtype: 'BF16', shape: [2048, 768] });
    expect(() => st.info('model.layers.1.mlp.up_proj.weight')).toThrow();
    // Progress: log lines on stderr (a bar on a TTY), the last one with done.
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(lines.at(-1)).toMatchObject({ level: 'info', event: 'make-model', done: true, total_bytes: expect.any(Number) });
  });
});
