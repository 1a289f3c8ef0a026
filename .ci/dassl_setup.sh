#!/usr/bin/env bash
# Install Dassl from its pinned source, which CI and development machines have beside the checkout
# (Dassl is not on PyPI and CI reaches only the package registries). The archive must be the commit
# README pins for users; its own dependencies come from PyPI. Without the archive nothing is
# installed and the Dassl tests skip (which fails the run under CI=true, see tests/conftest.py).
#   bash .ci/dassl_setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
vendor=../shared/vendor
pinned=$(grep -o 'Dassl.pytorch@[0-9a-f]\{40\}' README.md | head -n 1 | cut -d@ -f2)
[ -n "$pinned" ] || { echo "dassl_setup.sh: README.md pins no Dassl commit" >&2; exit 1; }
archive="$vendor/Dassl.pytorch-${pinned:0:7}.tar.gz"
if [ ! -f "$archive" ]; then
  echo "dassl_setup.sh: no pinned Dassl source at $archive; the Dassl tests will skip" >&2
  exit 0
fi
commit=$(gunzip -c "$archive" | git get-tar-commit-id || true)
if [ "$commit" != "$pinned" ]; then
  echo "dassl_setup.sh: $archive holds commit '${commit:-unknown}', README pins $pinned" >&2
  exit 1
fi
python3 -m pip install -q --root-user-action=ignore --no-build-isolation "$archive"
version=$(python3 -c 'from importlib.metadata import version; print(version("dassl"))')
echo "dassl_setup.sh: installed Dassl $version, commit $commit, from $archive"
