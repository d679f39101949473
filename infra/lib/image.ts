// The serving image: container/Dockerfile built from the repository root as a CDK asset (the CLI
// builds and pushes it on deploy), or an image already in ECR.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Aws, IgnoreMode } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import { DockerImageAsset, Platform } from 'aws-cdk-lib/aws-ecr-assets';
import { Construct } from 'constructs';

/** Build from `directory` (default: this checkout's root), or use `uri` (an ECR image). */
export type ImageSource = { readonly directory?: string; readonly file?: string } | { readonly uri: string };

/** On top of the root .dockerignore (read by the asset too): never stage these, even if it changes. */
export const ALWAYS_EXCLUDED = ['.git', '**/node_modules', 'dist', 'native/build', 'native/build-*', 'infra', '**/cdk.out', 'models/*', '!models/chat-templates'];

export interface ResolvedImage { readonly imageUri: string; readonly repository: ecr.IRepository; readonly asset?: DockerImageAsset }

/** The folder above `from` that holds container/Dockerfile (works from infra/lib and infra/dist/lib). */
export function findRepoRoot(from: string = __dirname): string {
  for (let dir = path.resolve(from); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'container', 'Dockerfile'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no container/Dockerfile above ${from}; pass image: { directory } or { uri }`);
  }
}

const ECR_URI = /^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\/([a-z0-9][a-z0-9._/-]*)(?::[\w.-]+|@sha256:[0-9a-f]{64})$/;

export function resolveImage(scope: Construct, source: ImageSource = {}): ResolvedImage {
  if ('uri' in source) {
    const m = ECR_URI.exec(source.uri);
    if (!m) throw new Error(`image URI must be an ECR image (ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG or @sha256:...), got '${source.uri}'`);
    const [, account, region, name] = m;
    const repository = ecr.Repository.fromRepositoryAttributes(scope, 'ImageRepository', {
      repositoryName: name,
      repositoryArn: `arn:${Aws.PARTITION}:ecr:${region}:${account}:repository/${name}`,
    });
    return { imageUri: source.uri, repository };
  }
  const asset = new DockerImageAsset(scope, 'Image', {
    directory: source.directory ?? findRepoRoot(),
    file: source.file ?? 'container/Dockerfile',
    platform: Platform.LINUX_AMD64,
    ignoreMode: IgnoreMode.DOCKER,
    exclude: ALWAYS_EXCLUDED,
    displayName: 'gyre-serving-image',
  });
  return { imageUri: asset.imageUri, repository: asset.repository, asset };
}
