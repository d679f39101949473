// The schema check in front of xgrammar (no model needed): bounded integers become enums
// because xgrammar 0.1.27's digit patterns are wrong for some ranges, and keywords it would
// silently ignore are refused by name.
import { checkSchema } from '../../src/api/structured_output';
import { loadXgrammar } from '../../src/engine/xgrammar';

interface XgTestApi {
  Grammar: { fromJSONSchema(schema: string, anyWhitespace?: boolean, indent?: number): Promise<unknown> };
  Testings: { isGrammarAcceptString(grammar: unknown, text: string): Promise<boolean> };
}

async function accepts(schema: unknown, texts: string[]): Promise<boolean[]> {
  const xg = (await loadXgrammar()) as unknown as XgTestApi;
  const grammar = await xg.Grammar.fromJSONSchema(JSON.stringify(schema), false, -1);
  return Promise.all(texts.map((t) => xg.Testings.isGrammarAcceptString(grammar, t)));
}

test('a bounded integer is exact: xgrammar alone admits 121 for maximum 120', async () => {
  const schema = { type: 'integer', minimum: -5, maximum: 120 };
  const texts = ['-6', '-5', '0', '99', '120', '121', '129'];
  expect(await accepts(schema, texts)).toEqual([false, true, true, true, true, true, true]);   // xgrammar's bug
  const fixed = checkSchema(schema, 'p');
  expect(fixed).toEqual({ enum: Array.from({ length: 126 }, (_, i) => i - 5) });
  expect(await accepts(fixed, texts)).toEqual([false, true, true, true, true, false, false]);
  expect(checkSchema({ type: 'integer', exclusiveMinimum: 0, maximum: 10, multipleOf: 5, title: 't' }, 'p'))
    .toEqual({ title: 't', enum: [5, 10] });
});

test('refused: keywords xgrammar ignores, bounds it gets wrong, malformed schemas', () => {
  expect(() => checkSchema({ type: 'number', minimum: -1, maximum: 1 }, 'guided_json'))
    .toThrow(/guided_json: unsupported JSON schema keyword "minimum" at the schema root/);
  expect(() => checkSchema({ type: 'integer', minimum: 0 }, 'p')).toThrow(/integer bounds need both ends/);
  expect(() => checkSchema({ type: 'object', properties: { a: { type: 'array', uniqueItems: true } } }, 'p'))
    .toThrow(/unsupported JSON schema keyword "uniqueItems" at properties\.a/);
  expect(() => checkSchema({ anyOf: [{ type: 'string' }, { if: {} }] }, 'p')).toThrow(/"if" at anyOf\[1\]/);
  expect(() => checkSchema({ type: 'object', required: 'a' }, 'p')).toThrow(/required must be an array of strings/);
  expect(() => checkSchema({ type: 'string', pattern: '(a' }, 'p')).toThrow(/pattern: the regular expression does not compile/);
  expect(() => checkSchema([1], 'p')).toThrow(/a schema must be an object/);
  expect(checkSchema({ type: 'string', maxLength: 3, enum: ['ab'] }, 'p'))
    .toEqual({ type: 'string', maxLength: 3, enum: ['ab'] });
});
