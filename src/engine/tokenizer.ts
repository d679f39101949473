// Text <-> token ids, over @huggingface/tokenizers (HF tokenizer.json), plus an incremental
// detokenizer for streaming.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

export interface EncodeOptions { addBos?: boolean }
export interface DecodeOptions { skipSpecial?: boolean }

type TokenSpec = string | { content: string } | null | undefined;

function tokenContent(t: TokenSpec): string | undefined {
  if (t == null) return undefined;
  return typeof t === 'string' ? t : t.content;
}

function readJson(file: string): Record<string, unknown> | undefined {
  return fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : undefined;
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
      ?? (typeof modelConfig.bos_token_id === 'number' ? modelConfig.bos_token_id : undefined);
    if (this.bosToken === undefined && this.bosTokenId !== undefined) this.bosToken = this.hf.id_to_token(this.bosTokenId);
    const eos = new Set<number>();
    const own = this.eosToken !== undefined ? this.hf.token_to_id(this.eosToken) : undefined;
    if (own !== undefined) eos.add(own);
    for (const id of [modelConfig.eos_token_id].flat()) if (typeof id === 'number') eos.add(id);
    this.eosTokenIds = [...eos];
    if (this.eosToken === undefined && this.eosTokenIds.length) this.eosToken = this.hf.id_to_token(this.eosTokenIds[0]);
  }

  /** Reads tokenizer.json, and tokenizer_config.json, generation_config.json, config.json if present. */
  static fromModelDir(dir: string): Tokenizer {
    const file = path.join(dir, 'tokenizer.json');
    if (!fs.existsSync(file)) throw new Error(`${dir}: no tokenizer.json`);
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    const config = readJson(path.join(dir, 'tokenizer_config.json')) ?? {};
    const model = { ...readJson(path.join(dir, 'config.json')), ...readJson(path.join(dir, 'generation_config.json')) };
    return new Tokenizer(json, config, model);
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
