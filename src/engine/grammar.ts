// Structured output: grammars compiled by xgrammar against the model's vocabulary, cached, and one
// matcher per constrained sequence. The matcher lives here, in JS; the engine samples a
// constrained sequence only under the allowed-token mask posted for its position.
//
//   step N's tokens reach JS -> matcher.acceptToken -> next mask -> engine.setMask(id, N + 1, mask)
//   (meanwhile the engine runs step N + 1's forward pass; it waits for the mask before sampling)
import type { Tokenizer } from './tokenizer';
import {
  type XgCompiledGrammar, type XgGrammarCompiler, type XgGrammarMatcher, type Xgrammar, loadXgrammar, xgCall,
} from './xgrammar';

/** What an output must match. */
export type GrammarSpec =
  | { type: 'json_schema'; schema: string }   // JSON text of the schema
  | { type: 'json_object' }                    // any JSON object
  | { type: 'regex'; pattern: string }
  | { type: 'choice'; choices: string[] }      // exactly one of these strings
  | { type: 'ebnf'; grammar: string };         // xgrammar's EBNF (GBNF-like), root rule "root"

export function grammarKey(spec: GrammarSpec): string {
  return JSON.stringify(spec);
}

/** A compiled grammar; shared by every request with the same spec while cached. */
export interface Grammar {
  readonly key: string;
  readonly compiled: XgCompiledGrammar;
}

const MAX_CACHED = 128;

/** Time spent computing masks in this process (the benchmark reports it). */
export const maskStats = { count: 0, totalMs: 0, maxMs: 0 };

/** Token strings by id, as xgrammar reads them (the tokenizer's own pieces, "▁" and "<0x0A>" included). */
function vocabType(vocab: string[]): 'byte_fallback' | 'byte_level' | 'raw' {
  if (vocab.some((t) => /^<0x[0-9A-F]{2}>$/.test(t))) return 'byte_fallback';
  if (vocab.some((t) => t?.startsWith('\u0120'))) return 'byte_level';
  return 'raw';
}

/**
 * Compiles grammars for one model (vocabulary and stop tokens), caching them by spec, so a
 * repeated schema costs nothing. Compilation runs on the JS thread, never on the engine's: the
 * request waits for it before it is submitted, while the engine keeps stepping.
 */
export class GrammarCompiler {
  private compiler?: Promise<{ xg: Xgrammar; compiler: XgGrammarCompiler }>;
  private readonly cache = new Map<string, Promise<Grammar>>();

  /** busy(true/false) brackets each blocking compilation (the engine then does not wait for masks). */
  constructor(private readonly tokenizer: Tokenizer, private readonly vocabSize: number,
              readonly stopTokenIds: number[], private readonly busy: (on: boolean) => void = () => {}) {}

  /** Throws XgrammarError (xgrammar's message) for a grammar it cannot compile. */
  compile(spec: GrammarSpec): Promise<Grammar> {
    const key = grammarKey(spec);
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);   // most recently used last
      this.cache.set(key, hit);
      return hit;
    }
    const compiled = this.compileNew(spec, key);
    this.cache.set(key, compiled);
    compiled.catch(() => this.cache.delete(key));
    // Evicted grammars are not disposed: a running matcher may still use one.
    while (this.cache.size > MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
    return compiled;
  }

  async matcher(grammar: Grammar): Promise<XgGrammarMatcher> {
    const { xg } = await this.start();
    return xg.GrammarMatcher.createGrammarMatcher(grammar.compiled, this.stopTokenIds);
  }

  private async compileNew(spec: GrammarSpec, key: string): Promise<Grammar> {
    const { compiler } = await this.start();
    const compiled = await this.blocking(() => xgCall(() => {
      switch (spec.type) {
        // One-line JSON without free whitespace (a model cannot pad it forever); strict: properties
        // the schema does not list are not generated.
        case 'json_schema': return compiler.compileJSONSchema(spec.schema, false, -1);
        case 'json_object': return compiler.compileJSONSchema('{"type": "object"}', false, -1, undefined, false);
        case 'regex': return compiler.compileStructuralTag({ type: 'structural_tag', format: { type: 'regex', pattern: spec.pattern } });
        case 'choice': return compiler.compileGrammar(`root ::= ${spec.choices.map(ebnfString).join(' | ')}`);
        case 'ebnf': return compiler.compileGrammar(spec.grammar);
      }
    }));
    return { key, compiled };
  }

  private async blocking<T>(call: () => Promise<T>): Promise<T> {
    this.busy(true);
    try {
      return await call();
    } finally {
      this.busy(false);
    }
  }

  private start(): Promise<{ xg: Xgrammar; compiler: XgGrammarCompiler }> {
    this.compiler ??= (async () => {
      const xg = await loadXgrammar();
      const vocab = this.tokenizer.vocabStrings();
      const info = await this.blocking(() => xg.TokenizerInfo.createTokenizerInfo(vocab, vocabType(vocab), false,
        this.vocabSize, this.stopTokenIds));
      return { xg, compiler: await xg.GrammarCompiler.createGrammarCompiler(info) };
    })();
    return this.compiler;
  }
}

/** An EBNF string literal for any text (JSON's escapes are xgrammar's). */
function ebnfString(text: string): string {
  return JSON.stringify(text);
}

/**
 * One constrained sequence's matcher. start() posts the mask of output token 0; advance() takes
 * each step's tokens and posts the next mask. A token the grammar refuses (it cannot happen
 * while the engine applies the masks) or a matcher failure calls fail.
 */
export class ConstrainedSequence {
  private matcher?: XgGrammarMatcher;
  private numAccepted = 0;
  private closed = false;
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly compiler: GrammarCompiler, private readonly grammar: Grammar,
              private readonly post: (outputIndex: number, mask: Int32Array) => void,
              private readonly fail: (message: string) => void) {}

  start(): void {
    this.run(async () => {
      this.matcher = await this.compiler.matcher(this.grammar);
    });
    this.postNext();
  }

  advance(tokens: readonly number[]): void {
    this.run(async () => {
      for (const t of tokens) {
        if (!this.matcher!.acceptToken(t)) throw new Error(`the grammar refused token ${t}`);
        this.numAccepted++;
      }
    });
    this.postNext();
  }

  close(): void {
    this.closed = true;
    this.run(async () => {
      this.matcher?.dispose();
      this.matcher = undefined;
    }, true);
  }

  private postNext(): void {
    this.run(async () => {
      if (this.matcher!.isTerminated()) return;  // it took a stop token: the engine has stopped too
      const t0 = performance.now();
      const mask = await this.matcher!.getNextTokenBitmask();
      const ms = performance.now() - t0;
      maskStats.count++;
      maskStats.totalMs += ms;
      maskStats.maxMs = Math.max(maskStats.maxMs, ms);
      if (!this.closed) this.post(this.numAccepted, mask);
    });
  }

  /** Matcher calls in order, one at a time. */
  private run(step: () => Promise<void>, whenClosed = false): void {
    this.chain = this.chain.then(async () => {
      if (this.closed && !whenClosed) return;
      await step();
    }).catch((e) => {
      if (this.closed) return;
      this.closed = true;
      this.fail((e as Error).message);
    });
  }
}
