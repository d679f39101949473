// Text <-> token ids, over @huggingface/tokenizers (HF tokenizer.json), plus an incremental
// detokenizer for streaming.
import * as path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { MAX_TOKENIZER_JSON_BYTES, modelFileExists, readModelJson } from '../model/model_file';

export interface EncodeOptions { addBos?: boolean }
export interface DecodeOptions { skipSpecial?: boolean }

type TokenSpec = string | { content: string } | null | undefined;

function tokenContent(t: TokenSpec): string | undefined {
  if (t == null) return undefined;
  return typeof t === 'string' ? t : t.content;
}

/** generation_config.json's token ids, when well formed (other fields do not concern the tokenizer). */
function generationIds(g: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const isId = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  if (isId(g?.bos_token_id)) out.bos_token_id = g!.bos_token_id;
  const eos = g?.eos_token_id;
  if (isId(eos) || (Array.isArray(eos) && eos.length <= 64 && eos.every(isId))) out.eos_token_id = eos;
  return out;
}

/** The first Regex pattern in a tokenizer.json decoder (pipeline), if any. Depth-bounded. */
export function decoderRegex(decoder: unknown, depth = 0): string | undefined {
  if (typeof decoder !== 'object' || decoder === null || depth > 16) return undefined;
  const d = decoder as Record<string, unknown>;
  if (typeof d.Regex === 'string') return d.Regex;
  for (const v of Object.values(d)) {
    const found = Array.isArray(v) ? v.map((x) => decoderRegex(x, depth + 1)).find((x) => x !== undefined) : decoderRegex(v, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

export class Tokenizer {
  private readonly hf: HfTokenizer;
  readonly bosToken: string | undefined;
  readonly eosToken: string | undefined;
  readonly bosTokenId: number | undefined;
  /** The first is the tokenizer's own EOS; the model's generation config may add more. */
  readonly eosTokenIds: number[];
  readonly vocabSize: number;
  readonly config: Record<string, unknown>;

  constructor(tokenizerJson: object, config: Record<string, unknown> = {},
              modelConfig: Record<string, unknown> = {}) {
    this.config = config;
    this.hf = new HfTokenizer(tokenizerJson, config);
    this.vocabSize = this.hf.get_vocab(true).size;
    this.bosToken = tokenContent(config.bos_token as TokenSpec);
    this.eosToken = tokenContent(config.eos_token as TokenSpec);
    this.bosTokenId = (this.bosToken !== undefined ? this.hf.token_to_id(this.bosToken) : undefined)
      ?? (Number.isSafeInteger(modelConfig.bos_token_id) && (modelConfig.bos_token_id as number) >= 0 &&
          (modelConfig.bos_token_id as number) < this.vocabSize ? modelConfig.bos_token_id as number : undefined);
    if (this.bosToken === undefined && this.bosTokenId !== undefined) this.bosToken = this.hf.id_to_token(this.bosTokenId);
    const eos = new Set<number>();
    const own = this.eosToken !== undefined ? this.hf.token_to_id(this.eosToken) : undefined;
    if (own !== undefined) eos.add(own);
    for (const id of [modelConfig.eos_token_id].flat() as number[]) if (Number.isSafeInteger(id) && id >= 0 && id < this.vocabSize) eos.add(id);
    this.eosTokenIds = [...eos];
    if (this.eosToken === undefined && this.eosTokenIds.length) this.eosToken = this.hf.id_to_token(this.eosTokenIds[0]);
  }

  /** Reads tokenizer.json, and tokenizer_config.json, generation_config.json, config.json if present. */
  static fromModelDir(dir: string): Tokenizer {
    if (!modelFileExists(dir, 'tokenizer.json')) throw new Error(`${dir}: no tokenizer.json`);
    const json = readModelJson(dir, 'tokenizer.json', MAX_TOKENIZER_JSON_BYTES)!;
    const file = path.join(dir, 'tokenizer.json');
    if (typeof json.model !== 'object' || json.model === null || Array.isArray(json.model)) {
      throw new Error(`${file}: field 'model' is missing (not a Hugging Face tokenizer.json)`);
    }
    const regex = decoderRegex(json.decoder);
    if (regex !== undefined) {
      throw new Error(`${file}: field 'decoder' uses the regex ${JSON.stringify(regex.slice(0, 40))}; decoding runs on the ` +
        'server\'s event loop, where a regex is not bounded, so only String patterns are accepted there');
    }
    const config = readModelJson(dir, 'tokenizer_config.json') ?? {};
    const model = { ...readModelJson(dir, 'config.json'), ...generationIds(readModelJson(dir, 'generation_config.json')) };
    try {
      return new Tokenizer(json, config, model);
    } catch (e) {
      throw new Error(`${file}: ${(e as Error).message}`);
    }
  }

  get eosTokenId(): number | undefined {
    return this.eosTokenIds[0];
  }

  /** Special tokens written in the text (e.g. "<s>" from a chat template) become their ids. */
  encode(text: string, { addBos = true }: EncodeOptions = {}): number[] {
    const ids = this.hf.encode(text, { add_special_tokens: false }).ids;
    if (addBos && this.bosTokenId !== undefined) ids.unshift(this.bosTokenId);
    return ids;
  }

  decode(ids: readonly number[], { skipSpecial = false }: DecodeOptions = {}): string {
    return this.hf.decode(ids as number[], { skip_special_tokens: skipSpecial, clean_up_tokenization_spaces: false });
  }

  /** Every token's string piece by id ("▁the", "<0x0A>", "</s>"); '' where an id has none. */
  vocabStrings(): string[] {
    const entries = [...this.hf.get_vocab(true).entries()];
    const out: string[] = new Array(Math.max(this.vocabSize, ...entries.map(([, id]) => id + 1))).fill('');
    for (const [token, id] of entries) out[id] = token;
    return out;
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  incrementalDecoder(opts: IncrementalDecoderOptions = {}): IncrementalDecoder {
    return new IncrementalDecoder(this, opts);
  }
}

// skipSpecial defaults to true here (streamed text should not show </s>).
export interface IncrementalDecoderOptions extends DecodeOptions {
  /** The prompt: its last few ids give the first generated token its context (its leading
   *  space survives the decoder's strip of the first space). */
  promptIds?: readonly number[];
}

// How many prompt ids seed the context (vLLM uses 5).
const PROMPT_CONTEXT = 5;

/**
 * Streams text from a growing id list: each push returns only new, complete text.
 *
 * The text of ids[prefix:read] was already emitted. After new ids arrive, decode ids[prefix:]
 * and emit what it adds to decode(ids[prefix:read]) — unless it ends in U+FFFD (an incomplete
 * byte-fallback sequence), in which case wait for more ids. Decoding from `prefix` rather than
 * `read` keeps SentencePiece's leading-space handling right. (TGI / vLLM do the same.)
 */
export class IncrementalDecoder {
  private readonly ids: number[];
  private prefixOffset = 0;
  private readOffset: number;
  private readonly skipSpecial: boolean;
  /** All text emitted so far. */
  text = '';

  constructor(private readonly tokenizer: Tokenizer, { promptIds = [], skipSpecial = true }: IncrementalDecoderOptions = {}) {
    this.skipSpecial = skipSpecial;
    this.ids = promptIds.slice(-PROMPT_CONTEXT);
    this.readOffset = this.ids.length;
  }

  push(ids: number | readonly number[]): string {
    if (typeof ids === 'number') this.ids.push(ids);
    else this.ids.push(...ids);
    const prefixText = this.decodeRange(this.prefixOffset, this.readOffset);
    const newText = this.decodeRange(this.prefixOffset, this.ids.length);
    if (newText.length <= prefixText.length || newText.endsWith('\uFFFD')) return '';
    const delta = newText.slice(prefixText.length);
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    this.text += delta;
    return delta;
  }

  /** At the end of a sequence: whatever is still held back (incomplete bytes decode as U+FFFD). */
  flush(): string {
    const prefixText = this.decodeRange(this.prefixOffset, this.readOffset);
    const newText = this.decodeRange(this.prefixOffset, this.ids.length);
    this.prefixOffset = this.readOffset = this.ids.length;
    const delta = newText.length > prefixText.length ? newText.slice(prefixText.length) : '';
    this.text += delta;
    return delta;
  }

  private decodeRange(begin: number, end: number): string {
    return begin >= end ? '' : this.tokenizer.decode(this.ids.slice(begin, end), { skipSpecial: this.skipSpecial });
  }
}
