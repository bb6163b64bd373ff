#!/usr/bin/env bash
# Lints every CloudFormation template under templates/ with cfn-lint (from PyPI, installed into
# the repo's .venv, created when missing). Exit code: cfn-lint's (non-zero on any error).
#
#   ./scripts/cfn-lint.sh            every template
#   ./scripts/cfn-lint.sh FILE...    only these
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/cfn-lint --version >/dev/null 2>&1; then
  .venv/bin/pip install --quiet --disable-pip-version-check 'cfn-lint>=1,<2' >&2
fi
if [ $# -eq 0 ]; then
  set -- templates/*.yaml
fi
.venv/bin/cfn-lint --version >&2
# every region: nothing in the templates may depend on one
exec .venv/bin/cfn-lint --regions us-east-1 eu-west-1 ap-southeast-2 -- "$@"
