// Admission: a request's sequences are accepted unless the waiting queue would grow past
// maxWaiting (then 429 with Retry-After, as TGI answers "Model is overloaded"). Waiting is what
// cannot run now: sequences in flight beyond maxSeqs, or the engine's own waiting count when KV
// memory, not maxSeqs, is the limit. Also counts requests in flight, so a drain can wait for them.
import { ApiError } from '../api/errors';

export class Admission {
  private seqs = 0;
  private requests = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly maxSeqs: number, private readonly maxWaiting: number,
              private readonly engineWaiting: () => number) {}

  get numSeqs(): number {
    return this.seqs;
  }

  get numRequests(): number {
    return this.requests;
  }

  /** Admits n sequences or throws a 429; call the returned function exactly once when done. */
  admit(n: number): () => void {
    const engineWaiting = this.engineWaiting();
    const waiting = Math.max(this.seqs + n - this.maxSeqs, engineWaiting > 0 ? engineWaiting + n : 0);
    if (waiting > this.maxWaiting) {
      throw new ApiError('overloaded',
        `Model is overloaded: ${waiting} sequences would be waiting, over the limit of ${this.maxWaiting} (GYRE_MAX_WAITING); retry shortly`,
        { retryAfter: 1 });
    }
    this.seqs += n;
    this.requests++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.seqs -= n;
      this.requests--;
      if (this.requests === 0) this.idleWaiters.splice(0).forEach((wake) => wake());
    };
  }

  /** Resolves true once no request is in flight, or false after timeoutMs. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.requests === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => { clearTimeout(timer); resolve(true); });
    });
  }
}
