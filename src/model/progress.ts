// Transfer progress: a JSON line every interval (bytes, MB/s, ETA) for logs, and a cli-progress
// bar when a person is watching (stdout is a TTY).
import type { SingleBar } from 'cli-progress';
import type { Logger } from '../server/logger';

export type LogFn = (event: Record<string, unknown>) => void;

let stderrLogger: Logger | undefined;

/** The serve log format (src/server/logger.ts), on stderr: stdout may carry a command's output. */
export const jsonLineLog: LogFn = (event) => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  stderrLogger ??= (require('../server/logger') as typeof import('../server/logger')).createLogger(process.stderr);
  stderrLogger.info(event, String(event.event ?? 'progress'));
};

export interface ProgressOptions {
  log?: LogFn | false;            // default: JSON lines on stderr
  bar?: boolean;                  // default: stdout is a TTY
  intervalMs?: number;            // default 1000
}

export class Progress {
  private bytes = 0;
  private readonly t0 = performance.now();
  private timer?: NodeJS.Timeout;
  private bar?: SingleBar;
  private readonly log?: LogFn;
  private readonly intervalMs: number;
  private lastLog = performance.now();

  constructor(private readonly event: string, private readonly total: number, readonly fields: Record<string, unknown>,
              opts: ProgressOptions = {}) {
    this.log = opts.log === false ? undefined : opts.log ?? jsonLineLog;
    this.intervalMs = opts.intervalMs ?? 1000;
    if (opts.bar ?? process.stdout.isTTY) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { SingleBar, Presets } = require('cli-progress') as typeof import('cli-progress');
      this.bar = new SingleBar({
        format: `${event} [{bar}] {percentage}% | {value_mb}/{total_mb} MB | {mb_s} MB/s | ETA {eta}s`,
        hideCursor: true,
      }, Presets.shades_classic);
      this.bar.start(total, 0, this.barFields());
    }
    if (this.log && !this.bar) {
      this.timer = setInterval(() => this.logNow(), this.intervalMs);
      this.timer.unref();
    }
  }

  add(n: number): void {
    this.bytes += n;
    this.bar?.update(this.bytes, this.barFields());
    // Synchronous writers (make-model) never let the timer run: log from here as well.
    if (this.timer && performance.now() - this.lastLog >= this.intervalMs) this.logNow();
  }

  private logNow(): void {
    this.lastLog = performance.now();
    this.log!(this.snapshot());
  }

  get mbPerSecond(): number {
    const secs = (performance.now() - this.t0) / 1000;
    return secs > 0 ? this.bytes / 1e6 / secs : 0;
  }

  snapshot(): Record<string, unknown> {
    const rate = this.mbPerSecond;
    const left = Math.max(0, this.total - this.bytes);
    return {
      event: this.event, ...this.fields, bytes: this.bytes, total_bytes: this.total,
      mb_s: Number(rate.toFixed(1)), eta_s: rate > 0 ? Number((left / 1e6 / rate).toFixed(1)) : null,
    };
  }

  /** Stops the bar and the timer; logs the final line. */
  finish(extra: Record<string, unknown> = {}): Record<string, unknown> {
    clearInterval(this.timer);
    this.bar?.stop();
    const secs = (performance.now() - this.t0) / 1000;
    const last = { ...this.snapshot(), ...extra, done: true, seconds: Number(secs.toFixed(2)) };
    this.log?.(last);
    return last;
  }

  private barFields() {
    const rate = this.mbPerSecond;
    return {
      value_mb: (this.bytes / 1e6).toFixed(0), total_mb: (this.total / 1e6).toFixed(0), mb_s: rate.toFixed(0),
      eta: rate > 0 ? ((this.total - this.bytes) / 1e6 / rate).toFixed(0) : '?',
    };
  }
}
