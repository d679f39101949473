// A plain float64 Llama forward pass for tests (no cache, no sliding window), with an optional
// LoRA adapter applied on the fly: y = W x + scale * B (A x), never forming B A. It is checked
// against the Hugging Face reference logits before it is trusted as an oracle.
import * as path from 'node:path';
import { SafetensorsFile } from '../../src/model/safetensors';

export interface OnTheFlyLora {
  scale: number;
  /** base weight name -> A [r, in] and B [out, r] */
  pairs: Map<string, { a: Float32Array; b: Float32Array; r: number }>;
}

type Vec = Float64Array;

export function llamaForward(dir: string, ids: number[], lora?: OnTheFlyLora): Float64Array[] {
  const cfg = require(path.join(dir, 'config.json'));   // eslint-disable-line @typescript-eslint/no-require-imports
  const st = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  const H = cfg.hidden_size, nH = cfg.num_attention_heads, nKV = cfg.num_key_value_heads ?? nH;
  const D = H / nH, eps = cfg.rms_norm_eps, theta = cfg.rope_theta ?? 10000;
  const cache = new Map<string, Float32Array>();
  const w = (name: string) => cache.get(name) ?? cache.set(name, st.readF32(name)).get(name)!;

  /** x [in] -> W x [out] (+ the adapter's low-rank path when it adapts `name`). */
  const linear = (name: string, x: Vec): Vec => {
    const W = w(name);
    const out = W.length / x.length;
    const y = new Float64Array(out);
    for (let o = 0; o < out; o++) {
      let s = 0;
      for (let i = 0; i < x.length; i++) s += W[o * x.length + i] * x[i];
      y[o] = s;
    }
    const p = lora?.pairs.get(name);
    if (p) {
      const ax = new Float64Array(p.r);
      for (let k = 0; k < p.r; k++) for (let i = 0; i < x.length; i++) ax[k] += p.a[k * x.length + i] * x[i];
      for (let o = 0; o < out; o++) for (let k = 0; k < p.r; k++) y[o] += lora!.scale * p.b[o * p.r + k] * ax[k];
    }
    return y;
  };
  const rms = (x: Vec, weight: Float32Array): Vec => {
    let ss = 0;
    for (const v of x) ss += v * v;
    const inv = 1 / Math.sqrt(ss / x.length + eps);
    return x.map((v, i) => v * inv * weight[i]);
  };
  const rope = (v: Vec, heads: number, pos: number) => {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < D / 2; i++) {
        const f = pos * theta ** (-(2 * i) / D);
        const a = v[h * D + i], b = v[h * D + i + D / 2];
        v[h * D + i] = a * Math.cos(f) - b * Math.sin(f);
        v[h * D + i + D / 2] = b * Math.cos(f) + a * Math.sin(f);
      }
    }
  };

  const embed = w('model.embed_tokens.weight');
  let xs: Vec[] = ids.map((id) => Float64Array.from(embed.subarray(id * H, (id + 1) * H)));
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const hs = xs.map((x) => rms(x, w(`${p}input_layernorm.weight`)));
    const q = hs.map((h, t) => { const v = linear(`${p}self_attn.q_proj.weight`, h); rope(v, nH, t); return v; });
    const k = hs.map((h, t) => { const v = linear(`${p}self_attn.k_proj.weight`, h); rope(v, nKV, t); return v; });
    const v = hs.map((h) => linear(`${p}self_attn.v_proj.weight`, h));
    xs = xs.map((x, t) => {
      const att = new Float64Array(nH * D);
      for (let h = 0; h < nH; h++) {
        const kvh = Math.floor(h / (nH / nKV));
        const scores = Array.from({ length: t + 1 }, (_, s) => {
          let d = 0;
          for (let i = 0; i < D; i++) d += q[t][h * D + i] * k[s][kvh * D + i];
          return d / Math.sqrt(D);
        });
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++) for (let i = 0; i < D; i++) att[h * D + i] += (e[s] / z) * v[s][kvh * D + i];
      }
      const o = linear(`${p}self_attn.o_proj.weight`, att);
      const x1 = x.map((xv, i) => xv + o[i]);
      const h2 = rms(x1, w(`${p}post_attention_layernorm.weight`));
      const g = linear(`${p}mlp.gate_proj.weight`, h2), u = linear(`${p}mlp.up_proj.weight`, h2);
      const act = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]);
      const d = linear(`${p}mlp.down_proj.weight`, act);
      return x1.map((xv, i) => xv + d[i]);
    });
  }
  const head = cfg.tie_word_embeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  return xs.map((x) => linear(head, rms(x, w('model.norm.weight'))));
}
