#!/usr/bin/env bash
# Installs the tslab kernel for these notebooks into notebooks-ts/.jupyter, and runs them headless.
#   notebooks-ts/run.sh                      all four, in order, into notebooks-ts/.out/
#   notebooks-ts/run.sh 02-invoke            one of them
#   notebooks-ts/run.sh --install            only the kernel; then open them in your Jupyter with
#                                            JUPYTER_PATH=notebooks-ts/.jupyter/share/jupyter
# Local mode unless AWS credentials are found (GYRE_LOCAL=1 forces it, GYRE_LOCAL=0 turns it off).
# Needs `npm ci` (tslab is a devDependency; dist/ is built) and Debian's Jupyter:
#   apt-get install -y --no-install-recommends python3-nbclient jupyter-nbconvert jupyter-client python3-ipython
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
tslab="${GYRE_TSLAB:-$root/node_modules/.bin/tslab}"
python=/usr/bin/python3   # Debian's, which has the packages above

[ -x "$tslab" ] || { echo "run.sh: no tslab at $tslab: run npm ci" >&2; exit 1; }
"$python" -c 'import nbconvert, nbclient' 2>/dev/null || {
  echo "run.sh: $python lacks nbconvert: apt-get install -y --no-install-recommends python3-nbclient jupyter-nbconvert jupyter-client python3-ipython" >&2
  exit 1
}
[ -f "$root/dist/cli/main.js" ] || { echo "run.sh: build first: npm run build:ts" >&2; exit 1; }

"$tslab" install --python="$python" --binary="$tslab" --prefix="$here/.jupyter" >/dev/null
export JUPYTER_PATH="$here/.jupyter/share/jupyter"
if [ "${1:-}" = --install ]; then
  echo "tslab kernel installed: JUPYTER_PATH=$JUPYTER_PATH"
  exit 0
fi

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(01-deploy 02-invoke 03-bring-your-own-model 04-benchmark)
mkdir -p "$here/.out"
for name in "${names[@]}"; do
  name="$(basename "${name%.ipynb}")"
  start=$SECONDS
  if ! "$python" -m nbconvert --to notebook --execute --ExecutePreprocessor.timeout=3600 \
      --output-dir "$here/.out" "$here/$name.ipynb" 2>"$here/.out/$name.log"; then
    grep -v '^\[NbConvertApp\]' "$here/.out/$name.log" | tail -n 40 >&2
    echo "$name: failed (log: $here/.out/$name.log)" >&2
    exit 1
  fi
  echo "$name: $((SECONDS - start)) s -> $here/.out/$name.ipynb"
done
