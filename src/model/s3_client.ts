// S3 clients and s3:// URIs. The SDK's own chain supplies credentials, region and the endpoint
// (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL / profile); we add what S3-compatible stores need.
import * as http from 'node:http';
import * as https from 'node:https';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { beforeAwsSdkClient } from '../sagemaker/node_version';

export interface S3Location {
  bucket: string;
  prefix: string;   // '' or ends with '/'
}

export function isS3Uri(spec: string): boolean {
  return /^s3:\/\//i.test(spec);
}

/** s3://bucket/prefix -> {bucket, prefix/}; the prefix is a folder, so it gets a trailing slash. */
export function parseS3Uri(uri: string): S3Location {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/i.exec(uri);
  if (!m || !m[1]) throw new Error(`${uri}: not an s3://bucket/prefix/ URI`);
  const prefix = m[2] && !m[2].endsWith('/') ? `${m[2]}/` : m[2];
  return { bucket: m[1], prefix };
}

export function s3Uri(loc: S3Location, name = ''): string {
  return `s3://${loc.bucket}/${loc.prefix}${name}`;
}

export interface S3ClientOptions {
  /** Sockets per host: at least the number of requests in flight. */
  maxSockets?: number;
  client?: S3Client;
}

const ENDPOINT_VARS = ['AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL'];

/** A client for many parallel requests. A custom endpoint (an S3-compatible store) gets
 *  path-style addressing; no configured region falls back to us-east-1 with region redirects. */
export async function makeS3Client(opts: S3ClientOptions = {}): Promise<S3Client> {
  if (opts.client) return opts.client;
  beforeAwsSdkClient();
  const maxSockets = opts.maxSockets ?? 64;
  const custom = ENDPOINT_VARS.some((v) => process.env[v]);
  const config: S3ClientConfig = {
    forcePathStyle: custom || undefined,
    followRegionRedirects: true,
    // The SDK's default checksums frame stream bodies (aws-chunked) that some stores keep
    // verbatim; our own sha256 manifest is the integrity check.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      httpAgent: new http.Agent({ keepAlive: true, maxSockets }),
      httpsAgent: new https.Agent({ keepAlive: true, maxSockets }),
      connectionTimeout: 10_000,
      requestTimeout: 60_000,
    },
  };
  const client = new S3Client(config);
  try {
    await client.config.region();
    return client;
  } catch {
    client.destroy();
    return new S3Client({ ...config, region: 'us-east-1' });
  }
}

/** The S3 error code of an SDK error (NoSuchKey, NoSuchBucket, AccessDenied, ...). */
export function s3ErrorCode(e: unknown): string | undefined {
  const err = e as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  if (err?.Code) return err.Code;
  if (err?.$metadata?.httpStatusCode === 404 && (err.name === 'NotFound' || err.name === 'Unknown')) return 'NotFound';
  return err?.name;
}
