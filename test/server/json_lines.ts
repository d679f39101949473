import type { Readable } from 'node:stream';

/** Parses a child's stdout as JSON lines (pino) into `logs`, as they arrive. */
export function collectJsonLines(out: Readable, logs: Record<string, unknown>[]): void {
  let buf = '';
  out.on('data', (d) => {
    buf += d;
    let cut: number;
    while ((cut = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, cut);
      buf = buf.slice(cut + 1);
      if (line.trim()) logs.push(JSON.parse(line));
    }
  });
}
