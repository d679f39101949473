// Gyre needs Node 22 LTS, as the AWS SDK for JavaScript will from January 2027. On an older Node
// the SDK prints a 9-line NodeVersionSupportWarning for every command that makes a client; its
// documented switch (AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED) turns that off, and Gyre
// says the same once, in one line (unless that switch was already set: then both stay quiet).
// Call before making an AWS SDK client.
export const MIN_NODE_MAJOR = 22;

let said = false;

export function beforeAwsSdkClient(version = process.version, write = (line: string) => process.stderr.write(line)): void {
  const switchedOff = process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED === 'true';
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  if (said || switchedOff || Number(version.replace(/^v/, '').split('.')[0]) >= MIN_NODE_MAJOR) return;
  said = true;
  write(`gyre: Node ${version} is older than Node ${MIN_NODE_MAJOR} LTS, which Gyre needs (and the AWS SDK from January 2027): please upgrade\n`);
}
