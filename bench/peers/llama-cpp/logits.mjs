// llama.cpp's next-token log-probabilities at every position of a prompt, for checking
// `gyre convert --to gguf` against our engine. Writes float32 [ids.length, vocab] to OUT: the
// natural log of the probabilities llama.cpp reports with temperature 1 and no truncation.
// Usage: node logits.mjs MODEL.gguf 1,2,3 OUT.f32 [threads]
import * as fs from 'node:fs';
import { getLlama } from 'node-llama-cpp';

const [file, idList, outFile, threads = '1'] = process.argv.slice(2);
const ids = idList.split(',').map(Number);
const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
const model = await llama.loadModel({ modelPath: file });
const context = await model.createContext({ contextSize: Math.max(64, ids.length + 8), threads: Number(threads),
  experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', flashAttention: false }); // KV in f32: an exact check
const vocab = model.fileInfo.metadata.llama.vocab_size;
const next = { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } };
const results = await context.getSequence().controlledEvaluate(ids.map((t) => [t, { generateNext: next }]));
const out = new Float32Array(ids.length * vocab).fill(-Infinity);
results.forEach((r, i) => { for (const [tok, p] of r.next.probabilities) out[i * vocab + tok] = Math.log(p); });
fs.writeFileSync(outFile, new Uint8Array(out.buffer));
process.stdout.write(JSON.stringify({ positions: ids.length, vocab }) + '\n');
await context.dispose();
await model.dispose();
