// What `gyre bench` drives: an OpenAI-compatible server (gyre serve or any other), a SageMaker
// endpoint through the runtime SDK, or the engine in this process. Each sends one request,
// streaming, and reports when its first token and its end arrived.
import type { BenchRequest } from './workload';

export interface Sample {
  index: number;
  start: number;               // ms, performance.now()
  ttft?: number;               // ms from start to the first generated token
  e2e: number;                 // ms from start to the last byte
  outputTokens: number;
  promptTokens?: number;       // the workload's count (BOS included)
  error?: string;
}

export interface Target {
  readonly name: string;       // a label: "gyre serve", "llama.cpp", ...
  readonly kind: string;       // url | openai-url | sagemaker-endpoint | in-process | peer
  readonly address?: string;
  send(req: BenchRequest): Promise<Sample>;
  /** Called before each level (and before the warm-up): a peer sizes its batch here. */
  beforeLevel?(concurrency: number): Promise<void>;
  close(): Promise<void>;
}

const now = () => performance.now();

/** Times one streaming request: `run` calls mark(n) as n tokens arrive and may return usage's count. */
export async function measure(req: BenchRequest, run: (mark: (tokens: number) => void) => Promise<number | undefined>): Promise<Sample> {
  const start = now();
  let ttft: number | undefined;
  let counted = 0;
  const mark = (tokens: number) => {
    if (tokens <= 0) return;
    if (ttft === undefined) ttft = now() - start;
    counted += tokens;
  };
  try {
    const reported = await run(mark);
    const e2e = now() - start;
    return { index: req.index, start, ttft, e2e, outputTokens: reported ?? counted };
  } catch (e) {
    return { index: req.index, start, ttft, e2e: now() - start, outputTokens: counted, error: (e as Error).message };
  }
}

/** Splits a byte stream into lines (SSE and TGI/SageMaker payloads are line-framed). */
async function* lines(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of chunks) {
    buf += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      yield buf.slice(0, nl).replace(/\r$/, '');
      buf = buf.slice(nl + 1);
    }
  }
  if (buf) yield buf;
}

/** POST /v1/completions with stream: true. Works with gyre serve, vLLM, TGI and llama-server. */
export class OpenAITarget implements Target {
  readonly address: string;
  constructor(readonly name: string, readonly kind: 'url' | 'openai-url', url: string, private readonly model = 'gyre') {
    this.address = url.replace(/\/+$/, '').replace(/\/v1$/, '');
  }

  send(req: BenchRequest): Promise<Sample> {
    return measure(req, async (mark) => {
      const res = await fetch(`${this.address}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: this.model, prompt: req.prompt, max_tokens: req.outputTokens,
          // Exactly outputTokens tokens: vLLM and gyre honour ignore_eos; vLLM also min_tokens.
          ...(this.kind === 'openai-url' ? { min_tokens: req.outputTokens } : {}),
          ignore_eos: true, temperature: 0, stream: true, stream_options: { include_usage: true },
        }),
      });
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
      let usage: number | undefined;
      for await (const line of lines(res.body as unknown as AsyncIterable<Uint8Array>)) {
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') break;
        const event = JSON.parse(data);
        if (event.error) throw new Error(event.error.message ?? JSON.stringify(event.error));
        if (event.usage?.completion_tokens !== undefined) usage = event.usage.completion_tokens;
        // One streamed chunk per token here (servers that merge tokens report usage at the end).
        if (event.choices?.[0]?.text) mark(1);
      }
      return usage;
    });
  }

  /** What the server says it is: llama-server's /props (build number and commit, slots, context
   *  per slot), or vLLM's /version; nothing when neither answers. */
  async serverInfo(): Promise<{ version?: string; settings?: Record<string, unknown> }> {
    const get = async (route: string) => {
      try {
        const res = await fetch(`${this.address}${route}`, { signal: AbortSignal.timeout(5000) });
        return res.ok ? await res.json() as Record<string, unknown> : undefined;
      } catch {
        return undefined;
      }
    };
    const props = await get('/props');
    if (typeof props?.build_info === 'string') {
      const gen = props.default_generation_settings as Record<string, unknown> | undefined;
      return { version: `llama.cpp ${props.build_info}`,
        settings: { total_slots: props.total_slots, n_ctx_per_slot: gen?.n_ctx, model_path: props.model_path } };
    }
    const v = await get('/version');
    return typeof v?.version === 'string' ? { version: v.version } : {};
  }

  async close(): Promise<void> {}
}

/** InvokeEndpointWithResponseStream with a TGI body; token events are `data:{"token":...}` lines. */
export class SageMakerTarget implements Target {
  readonly kind = 'sagemaker-endpoint';
  private client?: import('@aws-sdk/client-sagemaker-runtime').SageMakerRuntimeClient;
  constructor(readonly name: string, readonly address: string, private readonly endpointUrl?: string,
              private readonly region?: string) {}

  send(req: BenchRequest): Promise<Sample> {
    return measure(req, async (mark) => {
      const sdk = await import('@aws-sdk/client-sagemaker-runtime');
      if (!this.client) (await import('../sagemaker/node_version')).beforeAwsSdkClient();
      this.client ??= new sdk.SageMakerRuntimeClient({
        region: this.region ?? process.env.AWS_REGION ?? 'us-east-1',
        ...(this.endpointUrl ? { endpoint: this.endpointUrl } : {}),
        // A local `gyre endpoint` checks no signature; the SDK still wants some credentials.
        ...(this.endpointUrl && !process.env.AWS_ACCESS_KEY_ID
          ? { credentials: { accessKeyId: 'gyre-bench', secretAccessKey: 'gyre-bench' } } : {}),
      });
      const out = await this.client.send(new sdk.InvokeEndpointWithResponseStreamCommand({
        EndpointName: this.address,
        ContentType: 'application/json',
        Body: new TextEncoder().encode(JSON.stringify({
          inputs: req.prompt, stream: true,
          parameters: { max_new_tokens: req.outputTokens, ignore_eos: true, do_sample: false },
        })),
      }));
      async function* payloads() {
        for await (const event of out.Body ?? []) {
          if (event.PayloadPart?.Bytes) yield event.PayloadPart.Bytes;
          const err = event.ModelStreamError ?? event.InternalStreamFailure;
          if (err) throw new Error(err.message ?? 'stream error');
        }
      }
      for await (const line of lines(payloads())) {
        if (!line.startsWith('data:')) continue;
        const event = JSON.parse(line.slice(5));
        if (event.error) throw new Error(String(event.error));
        if (event.token && !event.token.special) mark(1);
      }
      return undefined;
    });
  }

  async close(): Promise<void> { this.client?.destroy(); }
}

/** The engine in this process: no HTTP, no JSON; what the server layer costs is the difference. */
export class InProcessTarget implements Target {
  readonly kind = 'in-process';
  private constructor(readonly name: string, readonly address: string,
                      private readonly engine: import('../engine/engine').Engine) {}

  static async load(name: string, model: string, threads?: number): Promise<InProcessTarget> {
    const { Engine } = await import('../engine/engine');
    return new InProcessTarget(name, model, await Engine.load(model, { backend: 'auto', numThreads: threads ?? 0 }));
  }

  get backend(): string { return this.engine.backend; }

  send(req: BenchRequest): Promise<Sample> {
    return measure(req, async (mark) => {
      for await (const chunk of this.engine.generate({ prompt: req.prompt, params: { maxTokens: req.outputTokens, ignoreEos: true, temperature: 0 } })) {
        mark(chunk.tokenIds.length);
        if (chunk.finishReason === 'error' || chunk.finishReason === 'abort') throw new Error(chunk.error ?? chunk.finishReason);
      }
      return undefined;
    });
  }

  close(): Promise<void> { return this.engine.close(); }
}
