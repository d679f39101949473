// The one log format of every command (serve, endpoint, progress lines): pino JSON lines with a
// level label, an ISO time and service "gyre". CloudWatch Logs keeps one event per line, and
// Logs Insights and EMF read the fields.
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

/** A logger on `destination` (default: stdout, written synchronously: pino's default asynchronous
 *  stdout can reorder or drop the last lines when the process exits); `fields` go on every line. */
export function createLogger(destination?: DestinationStream, level = process.env.GYRE_LOG_LEVEL ?? 'info',
                             fields: Record<string, unknown> = {}): Logger {
  const opts = {
    level,
    base: { service: 'gyre', ...fields },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return pino(opts, destination ?? pino.destination({ dest: 1, sync: true }));
}
