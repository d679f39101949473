// JSON log lines (pino) on stdout: CloudWatch Logs keeps one event per line, and Logs Insights
// and EMF read the fields.
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export function createLogger(destination?: DestinationStream, level = process.env.GYRE_LOG_LEVEL ?? 'info'): Logger {
  const opts = {
    level,
    base: { service: 'gyre' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return destination ? pino(opts, destination) : pino(opts);
}
