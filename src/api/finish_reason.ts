// Why a request ended, in each API's words. The engine reports the reason (request_stream.ts);
// these tables only translate it.
import type { FinishReason } from '../engine/engine';

const TGI: Record<FinishReason, string> = {
  eos: 'eos_token', stop_token: 'stop_sequence', stop_string: 'stop_sequence', length: 'length',
  // A failed request answers with an error, not a finish reason; a stream's last event may still carry one.
  abort: 'length', error: 'length',
};

const OPENAI: Record<FinishReason, string> = {
  eos: 'stop', stop_token: 'stop', stop_string: 'stop', length: 'length', abort: 'abort', error: 'error',
};

/** TGI's three: eos_token, stop_sequence (a stop string or stop token id), length. */
export function tgiFinishReason(reason: FinishReason): string {
  return TGI[reason];
}

/** OpenAI's (and vLLM's LLM.generate's): stop, length; abort and error as they are. */
export function openAiFinishReason(reason: FinishReason): string {
  return OPENAI[reason];
}
