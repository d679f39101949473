// Chat messages -> prompt text, by the model's Jinja chat template (tokenizer_config.json), or a
// built-in Llama-2-chat / Mistral-instruct template when the model folder has none.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Template } from '@huggingface/jinja';
import { readModelJson } from '../model/model_file';

export interface ChatMessage {
  role: string;
  content: string;
}

/** A template that does not parse, or that rejects the conversation (raise_exception). */
export class ChatTemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChatTemplateError';
  }
}

export type BuiltinTemplate = 'llama-2-chat' | 'mistral-instruct';

const TEMPLATE_DIR = path.resolve(__dirname, '..', '..', 'models', 'chat-templates');

export function builtinTemplate(name: BuiltinTemplate): string {
  return fs.readFileSync(path.join(TEMPLATE_DIR, `${name}.jinja`), 'utf8');
}

/** The built-in template for a model's config.json (architectures / model_type), if any. */
export function builtinTemplateFor(config: Record<string, unknown>): BuiltinTemplate | undefined {
  const arch = String((config.architectures as string[] | undefined)?.[0] ?? '').toLowerCase();
  const type = String(config.model_type ?? '').toLowerCase();
  if (type === 'mistral' || arch.startsWith('mistral')) return 'mistral-instruct';
  if (type === 'llama' || arch.startsWith('llama')) return 'llama-2-chat';
  return undefined;
}

type TemplateField = string | { name: string; template: string }[] | undefined;
type TokenSpec = string | { content: string } | null | undefined;

function tokenContent(t: TokenSpec): string {
  if (t == null) return '';
  return typeof t === 'string' ? t : t.content;
}

export interface ChatTemplateOptions {
  bosToken?: string;
  eosToken?: string;
}

export class ChatTemplate {
  private readonly template: Template;
  readonly bosToken: string;
  readonly eosToken: string;

  constructor(readonly source: string, { bosToken = '<s>', eosToken = '</s>' }: ChatTemplateOptions = {}) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new ChatTemplateError(`chat template does not parse: ${(e as Error).message}`);
    }
    this.bosToken = bosToken;
    this.eosToken = eosToken;
  }

  /** tokenizer_config.json's chat_template (a string, or a list with a "default" entry), else
   *  the built-in template for config.json's architecture. */
  static fromModelDir(dir: string): ChatTemplate {
    const read = (f: string) => readModelJson(dir, f) ?? {};
    const tokConfig = read('tokenizer_config.json');
    const opts = {
      bosToken: tokenContent(tokConfig.bos_token as TokenSpec) || '<s>',
      eosToken: tokenContent(tokConfig.eos_token as TokenSpec) || '</s>',
    };
    let source: string | undefined;
    const field = tokConfig.chat_template as TemplateField;
    if (typeof field === 'string') source = field;
    else if (Array.isArray(field)) source = (field.find((t) => t.name === 'default') ?? field[0])?.template;
    if (source === undefined) {
      const name = builtinTemplateFor(read('config.json'));
      if (!name) throw new ChatTemplateError(`${dir}: no chat_template in tokenizer_config.json and no built-in one for this architecture`);
      source = builtinTemplate(name);
    }
    return new ChatTemplate(source, opts);
  }

  render(messages: readonly ChatMessage[], { addGenerationPrompt = true } = {}): string {
    try {
      return this.template.render({
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        bos_token: this.bosToken,
        eos_token: this.eosToken,
        add_generation_prompt: addGenerationPrompt,
      });
    } catch (e) {
      throw new ChatTemplateError((e as Error).message);
    }
  }
}

/** The rendered prompt's ids. The template writes BOS itself, so the tokenizer adds none. */
export function encodeChat(tokenizer: { encode(text: string, o: { addBos: boolean }): number[] },
                           template: ChatTemplate, messages: readonly ChatMessage[]): number[] {
  return tokenizer.encode(template.render(messages), { addBos: false });
}
