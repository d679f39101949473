// What every route shares: the settings, the model host, admission, metrics and the logger.
import type { Admission } from './admission';
import type { BodyLimits } from './body';
import type { ServeConfig } from './config';
import type { EmfReporter } from './emf';
import type { Logger } from './logger';
import type { Metrics } from './metrics';
import type { ModelHost } from './model_host';

export interface ServerContext {
  cfg: ServeConfig;
  host: ModelHost;
  admission: Admission;
  bodyLimits: BodyLimits;   // time limit and shared byte budget for request bodies
  metrics: Metrics;
  emf: EmfReporter;
  logger: Logger;
  version: string;
  fingerprint: string;   // OpenAI's system_fingerprint
}
