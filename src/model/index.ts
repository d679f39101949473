// The model-handling API the CLI, the server and the notebooks use.
export { uploadModel, type UploadOptions, type UploadResult } from './s3_upload';
export { downloadModel, type DownloadOptions, type DownloadResult } from './s3_download';
export { validateModel, formatReport, type ValidationReport, type ValidateOptions } from './validate';
export { resolveModel, type ResolveOptions, type ResolvedModel } from './model_source';
export { mergeLora, type MergeResult } from './lora';
export { quantizeModel, type QuantizeOptions, type QuantizeResult } from './quantize';
export { type Manifest, MANIFEST_NAME } from './manifest';
