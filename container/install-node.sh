#!/usr/bin/env bash
# Installs Node.js from the official nodejs.org tarball into /usr/local (the image's build stage).
# The tarball is checked against the release's SHASUMS256.txt. Usage: install-node.sh 22.20.0
set -euo pipefail
version="${1:?usage: install-node.sh NODE_VERSION}"
# Gyre needs Node 22 LTS or later (package.json engines).
if [ "${version%%.*}" -lt 22 ]; then
  echo "install-node.sh: Node $version is older than 22 LTS, which Gyre needs" >&2; exit 1
fi
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "install-node.sh: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
name="node-v${version}-linux-${arch}.tar.xz"
base="https://nodejs.org/dist/v${version}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
curl -fsSLo "$tmp/$name" "$base/$name"
curl -fsSLo "$tmp/SHASUMS256.txt" "$base/SHASUMS256.txt"
(cd "$tmp" && grep " ${name}\$" SHASUMS256.txt | sha256sum -c -)
tar -xJf "$tmp/$name" -C /usr/local --strip-components=1 --no-same-owner
node --version
