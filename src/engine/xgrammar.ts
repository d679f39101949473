// Loads @mlc-ai/web-xgrammar (the MLC grammar engine compiled to WebAssembly) and types the part of
// it Gyre uses. The package says "type": "module" but ships a UMD bundle that Node 20 cannot load
// as an ES module, so the bundle runs here as CommonJS source. xgrammar reports a bad grammar by
// printing "[FATAL] ... message" and aborting the call; the print is captured so the error names
// the problem.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface XgTokenizerInfo { getVocabSize(): number; dispose(): void }
export interface XgCompiledGrammar { dispose(): void }
export interface XgGrammarCompiler {
  compileJSONSchema(schema: string, anyWhitespace?: boolean, indent?: number, separators?: [string, string],
                    strictMode?: boolean): Promise<XgCompiledGrammar>;
  compileGrammar(ebnf: string, rootRule?: string): Promise<XgCompiledGrammar>;
  compileStructuralTag(tag: object): Promise<XgCompiledGrammar>;
  dispose(): void;
}
export interface XgGrammarMatcher {
  acceptToken(id: number): boolean;
  getNextTokenBitmask(): Promise<Int32Array>;
  isTerminated(): boolean;
  dispose(): void;
}
export interface Xgrammar {
  TokenizerInfo: {
    createTokenizerInfo(vocab: string[], vocabType: string, prependSpace: boolean, vocabSize?: number,
                        stopTokenIds?: number[]): Promise<XgTokenizerInfo>;
  };
  GrammarCompiler: { createGrammarCompiler(info: XgTokenizerInfo, cacheEnabled?: boolean): Promise<XgGrammarCompiler> };
  GrammarMatcher: { createGrammarMatcher(compiled: XgCompiledGrammar, stopTokens?: number[]): Promise<XgGrammarMatcher> };
}

let loaded: Promise<Xgrammar> | undefined;
let captured: string[] | undefined;

/** xgrammar, loaded once per process (its WebAssembly starts on first use). */
export function loadXgrammar(): Promise<Xgrammar> {
  loaded ??= (async () => {
    const file = require.resolve('@mlc-ai/web-xgrammar');
    const mod = { exports: {} as Record<string, unknown> };
    // Its one dynamic import (of node:module) becomes a require: code built with new Function has
    // no import() under jest's VM.
    const source = fs.readFileSync(file, 'utf8').replace("await import('module')", "require('module')");
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    new Function('exports', 'module', 'require', '__filename', '__dirname', source)(
      mod.exports, mod, require, file, path.dirname(file));
    const xg = mod.exports as unknown as Xgrammar & { Testings: { _jsonSchemaToEBNF(s: string): Promise<string> } };
    // The module binds console.error when it starts: start it with a forwarder that can capture.
    const original = console.error;
    const forward = (...args: unknown[]) => {
      if (captured) captured.push(args.map(String).join(' '));
      else original(...args);
    };
    console.error = forward;
    try {
      await xg.Testings._jsonSchemaToEBNF('{"type": "null"}');
    } finally {
      if (console.error === forward) console.error = original;
    }
    return xg;
  })();
  return loaded;
}

/** A grammar xgrammar refused; message is its own ("Regex parsing error at position 5: ..."). */
export class XgrammarError extends Error {}

/** Runs one xgrammar call; its abort becomes an XgrammarError carrying xgrammar's message. */
export async function xgCall<T>(call: () => Promise<T>): Promise<T> {
  const lines: string[] = [];
  const outer = captured;
  captured = lines;
  try {
    return await call();
  } catch (e) {
    const fatal = lines.map((l) => /\[FATAL\][^:]*:\d+: (.*)/s.exec(l)?.[1]).find((m) => m);
    throw new XgrammarError(fatal?.trim() ?? (e as Error).message);
  } finally {
    captured = outer;
  }
}
