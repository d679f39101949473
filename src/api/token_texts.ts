// The text of a single token, as logprobs and TGI's token lists show it: " world" with its
// leading space. SentencePiece drops the first token's leading space when decoding, so a token
// is decoded after a fixed anchor token and the anchor's text is cut off. Models without a
// tokenizer show "token_id:123" (vLLM's form). Results are cached (at most one per vocab entry).
// maxTokenChars bounds how much text one token covers, so an overlong prompt can be refused
// without tokenizing it (tokenizing blocks the event loop: ~10 ms per 1,000 characters).
import type { Tokenizer } from '../engine/tokenizer';

export class TokenTexts {
  private readonly cache = new Map<number, string>();
  private readonly byteCache = new Map<number, number[]>();
  private readonly anchor?: number;
  private readonly anchorText: string = '';
  private readonly special: Set<number>;
  /** The longest vocabulary entry, in UTF-16 units (Infinity without a tokenizer). */
  readonly maxTokenChars: number = Infinity;

  constructor(private readonly tokenizer: Tokenizer | undefined,
              config: { bosTokenId: number; eosTokenIds: number[] }) {
    this.special = new Set([config.bosTokenId, ...config.eosTokenIds]);
    if (!tokenizer) return;
    for (const id of [tokenizer.bosTokenId, ...tokenizer.eosTokenIds]) if (id !== undefined) this.special.add(id);
    const unk = tokenizer.tokenToId('<unk>');
    if (unk !== undefined) this.special.add(unk);
    this.anchor = tokenizer.tokenToId('\u2581a') ?? tokenizer.tokenToId('a');
    if (this.anchor !== undefined) this.anchorText = tokenizer.decode([this.anchor]);
    let longest = 1;
    for (let id = 0; id < tokenizer.vocabSize; id++) longest = Math.max(longest, tokenizer.idToToken(id)?.length ?? 0);
    this.maxTokenChars = longest;
  }

  text(id: number): string {
    let t = this.cache.get(id);
    if (t !== undefined) return t;
    if (!this.tokenizer) t = `token_id:${id}`;
    else if (this.anchor === undefined) t = this.tokenizer.decode([id]);
    else {
      const both = this.tokenizer.decode([this.anchor, id]);
      t = both.startsWith(this.anchorText) ? both.slice(this.anchorText.length) : this.tokenizer.decode([id]);
    }
    this.cache.set(id, t);
    return t;
  }

  /** The UTF-8 bytes of text(id), cached: OpenAI's logprobs carry them for every top token. */
  bytes(id: number): number[] {
    let b = this.byteCache.get(id);
    if (b === undefined) {
      b = [...Buffer.from(this.text(id), 'utf8')];
      this.byteCache.set(id, b);
    }
    return b;
  }

  isSpecial(id: number): boolean {
    return this.special.has(id);
  }
}
