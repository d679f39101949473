#!/usr/bin/env node
// The gyre CLI. Each command's module is imported only when that command runs, so
// `gyre --help` and the other commands do not load tokenizers, the addon, etc.
// Options reach each command's run(opts) camelCased and already parsed, as declared below.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';

type CommandModule = { run(opts: Record<string, unknown>): Promise<void> };

function integer(min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
    return n;
  };
}

function number(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number');
  return n;
}

function idList(v: string): number[] {
  const ids = v.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  if (!ids.length || ids.some((n) => !Number.isSafeInteger(n) || n < 0)) {
    throw new InvalidArgumentError('expected comma-separated token ids, e.g. 1,2,3');
  }
  return ids;
}

function lazy(load: () => Promise<CommandModule>) {
  return async (opts: Record<string, unknown>): Promise<void> => {
    await (await load()).run(opts);
  };
}

const backendOption = () => new Option('--backend <backend>', 'compute backend').choices(['cpu', 'cuda', 'auto']).default('auto');
const threadsOption = () => new Option('--threads <n>', 'CPU threads (0: all cores)').argParser(integer(0));
const quantizationOption = () => new Option('--quantization <q>', 'weights: none (as stored), or int8 (quantized at load; int8 files run int8 anyway)')
  .choices(['none', 'int8']);
const quantizeLmHeadOption = (text = 'with int8: quantize the LM head too') => new Option('--quantize-lm-head', text);

/** --quantize-lm-head without int8 is a usage error (exit 2), not silently ignored. */
function lmHeadNeedsInt8(flag: string) {
  return (_parent: Command, cmd: Command) => {
    const o = cmd.opts();
    if (o.quantizeLmHead && o[flag] !== 'int8') cmd.error(`error: --quantize-lm-head needs --${flag} int8`);
  };
}

export function buildProgram(): Command {
  const version = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')).version;
  const program = new Command('gyre')
    .description('Gyre: a fast LLM inference engine for Llama-2 and Mistral models')
    .version(version)
    .exitOverride();

  program.command('logits')
    .description('write the logits of every position of a prompt to a safetensors file')
    .requiredOption('--model <dir>', 'model folder (HF format)')
    .requiredOption('--ids <ids>', 'prompt token ids, comma-separated', idList)
    .requiredOption('--out <file>', 'output .safetensors file')
    .addOption(backendOption())
    .addOption(threadsOption())
    .addOption(quantizationOption())
    .addOption(quantizeLmHeadOption())
    .hook('preAction', lmHeadNeedsInt8('quantization'))
    .action(lazy(() => import('./commands/logits')));

  program.command('generate')
    .description('generate text for one prompt, or for every prompt of a JSONL file')
    .requiredOption('--model <dir>', 'model folder (HF format) or s3://bucket/prefix/')
    .addOption(new Option('--prompt <text>', 'a single prompt').conflicts('prompts'))
    .addOption(new Option('--chat', 'wrap --prompt in the model\'s chat template').conflicts('prompts'))
    .option('--prompts <file>', 'JSONL file of prompts (needs --out)')
    .option('--out <file>', 'JSONL output for --prompts')
    .option('--max-tokens <n>', 'most new tokens per prompt (default: generation_config.json\'s max_new_tokens, else 256)', integer(1))
    .option('--temperature <t>', 'sampling temperature (0: greedy)', number)
    .option('--top-p <p>', 'nucleus sampling threshold', number)
    .option('--top-k <k>', 'sample from the k most likely tokens', integer(0))
    .option('--min-p <p>', 'drop tokens below p times the top probability', number)
    .option('--seed <s>', 'sampling seed', integer(0))
    .option('--ignore-eos', 'keep generating past the end-of-sequence token')
    .option('--max-concurrency <k>', 'prompts in flight at once', integer(1))
    .addOption(backendOption())
    .addOption(threadsOption())
    .addOption(quantizationOption())
    .addOption(quantizeLmHeadOption())
    .hook('preAction', (_parent, cmd) => {
      const o = cmd.opts();
      if (o.prompt === undefined && o.prompts === undefined) cmd.error('error: one of --prompt or --prompts is required');
      if (o.prompts !== undefined && o.out === undefined) cmd.error('error: --prompts needs --out');
    })
    .hook('preAction', lmHeadNeedsInt8('quantization'))
    .action(lazy(() => import('./commands/generate')));

  program.command('make-model')
    .description('write a random-weight model folder of a known shape (HF format)')
    // gyre/shapes.h's names, listed here so that --help need not load the addon (a test compares them)
    .addOption(new Option('--shape <shape>', 'model shape')
      .choices(['tiny', '100m', 'llama-2-7b', 'llama-2-13b', 'mistral-7b']).makeOptionMandatory())
    .option('--layers <n>', 'override the number of layers', integer(1))
    .addOption(new Option('--dtype <dtype>', 'weight dtype').choices(['f32', 'f16', 'bf16']).default('f32'))
    .option('--seed <s>', 'random seed', integer(0), 0)
    .option('--scale <x>', 'multiplies the std of linear/embedding weights (0.02)', number)
    .requiredOption('--out <dir>', 'output folder (new or empty)')
    .option('--force', 'write into a non-empty --out, replacing its model files')
    .action(lazy(() => import('./commands/make_model')));

  program.command('endpoint')
    .description('serve the SageMaker runtime API locally in front of a running container (for the AWS SDK)')
    .requiredOption('--target <url>', 'the container, e.g. http://127.0.0.1:8080')
    .option('--port <n>', 'port to listen on', integer(0), 8081)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--ready-timeout <s>', 'seconds an invocation waits for the container\'s /ping 200', integer(1), 60)
    .action(lazy(() => import('./commands/endpoint')));

  program.command('validate')
    .description('check a model folder before serving or upload; report its memory needs on an A10G')
    .option('--model <dir>', 'model folder or s3://bucket/prefix/ (default: /opt/ml/model)')
    .option('--json', 'print the report as JSON')
    .option('--memory-fraction <f>', 'share of GPU memory used (default 0.9)', number)
    .option('--check-values', 'also read every weight and refuse NaN or infinite values')
    .action(lazy(() => import('./commands/validate')));

  program.command('upload')
    .description('validate a model (merging a LoRA adapter first, if given) and upload it to S3 with a manifest')
    .requiredOption('--model <dir>', 'model folder (HF format)')
    .requiredOption('--to <uri>', 'destination, s3://bucket/prefix/')
    .option('--adapter <dir>', 'PEFT LoRA adapter folder to merge before upload')
    .addOption(new Option('--quantize <q>', 'int8: upload 8-bit weights (gyre quantize; half the bytes)').choices(['none', 'int8']))
    .addOption(quantizeLmHeadOption())
    .hook('preAction', lmHeadNeedsInt8('quantize'))
    .option('--part-size <mib>', 'multipart part size in MiB (default 16)', integer(5))
    .option('--concurrency <n>', 'parts in flight (default 16)', integer(1))
    .action(lazy(() => import('./commands/upload')));

  program.command('merge')
    .description('merge a PEFT LoRA adapter into its base model, writing a new model folder')
    .requiredOption('--model <dir>', 'base model folder')
    .requiredOption('--adapter <dir>', 'PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors)')
    .requiredOption('--out <dir>', 'output model folder')
    .action(lazy(() => import('./commands/merge')));

  program.command('quantize')
    .description('write a float model folder as 8-bit weights (int8 per output channel; half the bytes of fp16)')
    .requiredOption('--model <dir>', 'float model folder (f32, f16 or bf16) or s3://bucket/prefix/')
    .requiredOption('--out <dir>', 'output folder (new or empty)')
    .addOption(quantizeLmHeadOption('quantize the LM head too (default: it keeps its dtype)'))
    .action(lazy(() => import('./commands/quantize')));

  program.command('eval-ppl')
    .description('perplexity of a text file under a model, with a sliding context (compare fp16 and int8 on your data)')
    .requiredOption('--model <dir>', 'model folder or s3://bucket/prefix/ (needs tokenizer.json)')
    .requiredOption('--text <file>', 'UTF-8 text file; tokenized with the model\'s tokenizer, BOS at the start only')
    .option('--context <n>', 'window length in tokens (default 1024, or the model\'s maximum if smaller)', integer(2))
    .option('--stride <n>', 'tokens between window starts, 1 to context - 1 (default context / 2)', integer(1))
    .option('--json', 'print the result as one JSON line')
    .addOption(backendOption())
    .addOption(threadsOption())
    .addOption(quantizationOption())
    .addOption(quantizeLmHeadOption())
    .hook('preAction', lmHeadNeedsInt8('quantization'))
    .action(lazy(() => import('./commands/eval_ppl')));

  program.command('convert')
    .description('write a model folder in another format (GGUF, for llama.cpp)')
    .addOption(new Option('--to <format>', 'output format').choices(['gguf']).makeOptionMandatory())
    .requiredOption('--model <dir>', 'model folder (HF format)')
    .requiredOption('--out <file>', 'output file, e.g. model.gguf')
    .addOption(new Option('--dtype <dtype>', 'weight type of the 2-D tensors, norms stay f32 (default: f16 for an f16 or bf16 model, else f32)').choices(['f32', 'f16']))
    .action(lazy(() => import('./commands/convert')));

  program.command('bench')
    .description('throughput against latency with N concurrent users, against a server, an endpoint or the engine')
    .option('--url <url>', 'a running gyre serve, e.g. http://127.0.0.1:8080')
    .option('--openai-url <url>', 'any OpenAI-compatible server (base URL, with or without /v1)')
    .option('--sagemaker-endpoint <name>', 'a SageMaker endpoint (runtime SDK, streaming)')
    .option('--endpoint-url <url>', 'SageMaker runtime URL (e.g. gyre endpoint\'s)')
    .option('--region <region>', 'AWS region for --sagemaker-endpoint')
    .option('--in-process', 'the engine in this process, no HTTP (needs --model)')
    .option('--model <dir>', 'model folder: --in-process loads it; its tokenizer shapes the workload')
    .option('--served-model <name>', 'model name sent in OpenAI requests')
    .option('--concurrency <list>', 'numbers of users, comma-separated', '1,2,4,8,16')
    .option('--requests <n>', 'requests per N (default 4N, at least 8)', integer(1))
    .option('--duration <s>', 'seconds per N instead of a request count', number)
    .option('--warmup <n>', 'requests before measuring each target', integer(0), 1)
    .option('--workload <file>', 'JSONL prompts instead of the generated workload')
    .option('--seed <s>', 'workload seed', integer(0), 0)
    .option('--max-prompt-tokens <n>', 'prompt length cap (<= 960)', integer(1), 960)
    .option('--max-output-tokens <n>', 'output length cap (<= 80)', integer(1), 80)
    .option('--system-fraction <f>', 'share of requests with the shared system prompt', number, 0.5)
    .option('--threads <n>', 'CPU threads of the in-process engine (0: all cores)', integer(0))
    .option('--label <name>', 'name of this target in the table, JSON and plot')
    .option('--merge <files>', 'comma-separated result JSONs to add to the plot (the same target in several files: its levels joined)')
    .option('--engine-file <file>', 'llama-bench and Gyre\'s equivalents, as bench/cpu_compare.sh collects them: printed with ratios, kept in the JSON')
    .option('--out <file>', 'result JSON, plot beside it: same base name, .svg and .png (default bench-results/gyre-bench-<time>.json)')
    .option('--quiet', 'no progress line')
    .action(lazy(() => import('./commands/bench')));

  // Flags have no defaults here: an unset flag falls back to the environment (src/server/config.ts).
  program.command('serve')
    .description('serve the model over HTTP: SageMaker /ping and /invocations, TGI and OpenAI APIs')
    .option('--model <dir>', 'model folder or s3://bucket/prefix/ (env GYRE_MODEL, HF_MODEL_ID; default /opt/ml/model when present)')
    .option('--port <n>', 'port (env SAGEMAKER_BIND_TO_PORT; default 8080)', integer(0))
    .option('--host <addr>', 'address to listen on (default 0.0.0.0)')
    .addOption(new Option('--backend <backend>', 'compute backend (env GYRE_BACKEND; default auto)').choices(['cpu', 'cuda', 'auto']))
    .option('--max-model-len <n>', 'context length served (env GYRE_MAX_MODEL_LEN, MAX_TOTAL_TOKENS)', integer(2))
    .option('--max-input-tokens <n>', 'longest prompt (env GYRE_MAX_INPUT_TOKENS, MAX_INPUT_TOKENS)', integer(1))
    .option('--max-batch-tokens <n>', 'token budget per engine step (env GYRE_MAX_BATCH_TOKENS, MAX_BATCH_PREFILL_TOKENS)', integer(1))
    .option('--max-seqs <n>', 'sequences running at once (env GYRE_MAX_SEQS; default 256)', integer(1))
    .option('--max-waiting <n>', 'waiting sequences before 429 (env GYRE_MAX_WAITING; default 1024)', integer(0))
    .option('--threads <n>', 'CPU threads, 0: all cores (env GYRE_THREADS)', integer(0))
    .option('--served-model-name <name>', 'model id reported by the APIs (env GYRE_SERVED_MODEL_NAME)')
    .option('--drain-timeout <s>', 'seconds in-flight requests get after SIGTERM (env GYRE_DRAIN_TIMEOUT; default 25)', integer(0))
    .option('--request-deadline <s>', 'seconds before a non-streaming request answers with what it has, finish reason length (env GYRE_REQUEST_DEADLINE_S; default 55 under SageMaker, else none)', number)
    .option('--stay-up-on-load-failure', 'when the model fails to load, keep running with /ping 503 instead of exiting 1 (env GYRE_STAY_UP_ON_LOAD_FAILURE)')
    .option('--gpu-memory-fraction <f>', 'share of GPU memory used, weights + KV cache (env GYRE_GPU_MEMORY_FRACTION; default 0.9)', number)
    .option('--gpu-memory-budget <size>', 'absolute GPU memory cap, e.g. 24G (env GYRE_GPU_MEMORY_BUDGET)')
    .addOption(new Option('--quantization <q>', 'weights (env GYRE_QUANTIZATION): none (as stored), or int8 (quantized at load)').choices(['none', 'int8']))
    .addOption(new Option('--quantize-lm-head', 'with int8: quantize the LM head too (env GYRE_QUANTIZE_LM_HEAD)'))
    .option('--max-response-buffer <bytes>', 'a stream this many bytes behind its client is aborted (env GYRE_MAX_RESPONSE_BUFFER; default 1 MiB)', integer(1))
    .option('--body-timeout <s>', 'seconds a request body may take to arrive, then 408 (env GYRE_BODY_TIMEOUT; default 30)', integer(1))
    .option('--max-body-bytes-in-flight <n>', 'request body bytes being received at once, then 503 (env GYRE_MAX_BODY_BYTES_IN_FLIGHT; default 64 MiB)', integer(1))
    .action(lazy(() => import('./commands/serve')));

  // The prompt is an argument, so the action gets (text, opts) and passes both on.
  program.command('invoke')
    .description('call a SageMaker endpoint serving Gyre with the AWS SDK and print the generated text')
    .argument('<text>', 'the prompt (with --chat, the user message)')
    .requiredOption('--endpoint <name>', 'the endpoint name')
    .option('--region <region>', 'AWS region (default: AWS_REGION, or the profile\'s)')
    .option('--endpoint-url <url>', 'runtime API URL, e.g. a local `gyre endpoint` at http://127.0.0.1:8081')
    .option('--stream', 'InvokeEndpointWithResponseStream: print tokens as they arrive')
    .option('--chat', 'send an OpenAI chat body with the text as the user message')
    .option('--max-tokens <n>', 'most new tokens (default: the server\'s, 256 unless the model sets one)', integer(1))
    .option('--temperature <t>', 'sampling temperature (0: greedy)', number)
    .option('--seed <s>', 'sampling seed', integer(0))
    .option('--raw', 'print the response body as received')
    .action(async (text: string, opts: Record<string, unknown>) => lazy(() => import('./commands/invoke'))({ ...opts, text }));

  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (e) {
    // Commander has already printed its message (or the help / version).
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    const err = e as Error;
    process.stderr.write(process.env.GYRE_DEBUG === '1' ? `gyre: ${err.stack ?? err}\n` : `gyre: ${err.message ?? err}\n`);
    return 1;
  }
}

if (require.main === module) {
  void main(process.argv).then((code) => { process.exitCode = code; });
}
