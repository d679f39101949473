import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  builtinTemplate, builtinTemplateFor, ChatMessage, ChatTemplate, ChatTemplateError, encodeChat,
} from '../../src/engine/chat_template';
import { Tokenizer } from '../../src/engine/tokenizer';

const ROOT = path.resolve(__dirname, '..', '..');
const DEMO = path.join(ROOT, 'models', 'demo');

const CONVERSATION: ChatMessage[] = [
  { role: 'system', content: 'You are a terse assistant.' },
  { role: 'user', content: 'What is 2+2?' },
  { role: 'assistant', content: '4.' },
  { role: 'user', content: 'And times 3?' },
];
const LLAMA_RENDER =
  '<s>[INST] <<SYS>>\nYou are a terse assistant.\n<</SYS>>\n\nWhat is 2+2? [/INST] 4. </s><s>[INST] And times 3? [/INST]';
const MISTRAL_RENDER =
  '<s> [INST] You are a terse assistant.\n\nWhat is 2+2? [/INST] 4.</s> [INST] And times 3? [/INST]';

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-chat-')); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function modelDir(name: string, files: Record<string, unknown>): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  for (const [f, v] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), JSON.stringify(v));
  return dir;
}

describe('built-in templates', () => {
  test('Llama-2-chat renders exactly', () => {
    expect(new ChatTemplate(builtinTemplate('llama-2-chat')).render(CONVERSATION)).toBe(LLAMA_RENDER);
  });

  test('Mistral-instruct renders exactly', () => {
    expect(new ChatTemplate(builtinTemplate('mistral-instruct')).render(CONVERSATION)).toBe(MISTRAL_RENDER);
  });

  test('picked by architecture / model_type', () => {
    expect(builtinTemplateFor({ architectures: ['LlamaForCausalLM'] })).toBe('llama-2-chat');
    expect(builtinTemplateFor({ model_type: 'mistral' })).toBe('mistral-instruct');
    expect(builtinTemplateFor({ architectures: ['MistralForCausalLM'], model_type: 'mistral' })).toBe('mistral-instruct');
    expect(builtinTemplateFor({ model_type: 'gpt2' })).toBeUndefined();
  });
});

describe('ChatTemplate.fromModelDir', () => {
  test('uses tokenizer_config.json chat_template (the demo model)', () => {
    expect(ChatTemplate.fromModelDir(DEMO).render(CONVERSATION)).toBe(LLAMA_RENDER);
  });

  test('falls back to the built-in template for config.json', () => {
    const dir = modelDir('mistral-no-template', { 'config.json': { model_type: 'mistral' } });
    expect(ChatTemplate.fromModelDir(dir).render(CONVERSATION)).toBe(MISTRAL_RENDER);
  });

  test('the folder\'s own template and special tokens win', () => {
    const dir = modelDir('custom', {
      'config.json': { model_type: 'llama' },
      'tokenizer_config.json': {
        bos_token: { __type: 'AddedToken', content: '<B>' }, eos_token: '<E>',
        chat_template: [{ name: 'tool_use', template: 'no' },
          { name: 'default', template: '{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}{{ eos_token }}{% endfor %}' }],
      },
    });
    expect(ChatTemplate.fromModelDir(dir).render([{ role: 'user', content: 'hi' }])).toBe('<B>user:hi<E>');
  });

  test('no template and an unknown architecture is an error', () => {
    const dir = modelDir('gpt2', { 'config.json': { model_type: 'gpt2' } });
    expect(() => ChatTemplate.fromModelDir(dir)).toThrow(ChatTemplateError);
  });
});

describe('errors', () => {
  test.each(['llama-2-chat', 'mistral-instruct'] as const)('%s: roles that do not alternate', (name) => {
    const t = new ChatTemplate(builtinTemplate(name));
    const bad = [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }];
    expect(() => t.render(bad)).toThrow(ChatTemplateError);
    expect(() => t.render(bad)).toThrow(/roles must alternate/);
  });

  test('a template that does not parse', () => {
    expect(() => new ChatTemplate('{% for m in messages %}')).toThrow(ChatTemplateError);
  });
});

describe('encodeChat', () => {
  test('the rendered prompt gets no second BOS', () => {
    const tok = Tokenizer.fromModelDir(DEMO);
    const ids = encodeChat(tok, ChatTemplate.fromModelDir(DEMO), CONVERSATION);
    expect(ids.slice(0, 4)).toEqual([1, 518, 25580, 29962]); // <s> ▁[ INST ]
    expect(ids.filter((i) => i === 1)).toHaveLength(2); // one per user turn
    expect(ids.filter((i) => i === 2)).toHaveLength(1); // after the assistant turn
    // Legacy SentencePiece: text after a special token gets a "▁", so decode shows "<s> [INST]".
    expect(tok.decode(ids).replace(/<s> /g, '<s>')).toBe(LLAMA_RENDER);
  });
});
