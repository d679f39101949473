// The child process of TokenizerPool: loads the model folder's tokenizer (and, on first use, its
// chat template), says {ready}, then answers {id, text | messages, addBos, decode} with
// {id, ids} or {id, error, template}. It exits when the server goes away.
import { ChatTemplate, ChatTemplateError } from './chat_template';
import { Tokenizer } from './tokenizer';

interface TextTask {
  id: number;
  text?: string;
  messages?: { role: string; content: string }[];
  addBos: boolean;
  decode?: boolean;
}

function run(dir: string): void {
  const send = (m: unknown) => process.send!(m);
  const tokenizer = Tokenizer.fromModelDir(dir);
  let template: ChatTemplate | undefined;
  process.on('message', (m: TextTask) => {
    try {
      let text = m.text ?? '';
      if (m.messages) {
        template ??= ChatTemplate.fromModelDir(dir);
        text = template.render(m.messages);
      }
      const ids = tokenizer.encode(text, { addBos: m.addBos });
      if (m.decode) tokenizer.decode(ids);
      send({ id: m.id, ids });
    } catch (e) {
      send({ id: m.id, error: String((e as Error)?.message ?? e), template: e instanceof ChatTemplateError });
    }
  });
  process.on('disconnect', () => process.exit(0));
  send({ ready: true });
}

if (require.main === module && process.send) {
  try {
    run(process.argv[2]);
  } catch (e) {
    process.send({ startError: String((e as Error)?.message ?? e) }, () => process.exit(1));
  }
}
