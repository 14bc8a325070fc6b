#!/usr/bin/env bash
# Set the image digests of one stack and run `pulumi up` on it.
#
# Usage: platform/cd/deploy_stack.sh STACK API_DIGEST STANDARD_DIGEST ML_DIGEST
# Needs PULUMI_BACKEND_URL and AWS credentials (the stack's deploy role).
set -euo pipefail

if [ "$#" -ne 4 ]; then
  echo "usage: $0 STACK API_DIGEST STANDARD_DIGEST ML_DIGEST" >&2
  exit 2
fi
stack="$1"

cd "$(dirname "$0")/../../pulumi"
# The program imports its components from platform/.
export PYTHONPATH="${PWD}/../platform${PYTHONPATH:+:${PYTHONPATH}}"
pulumi login "${PULUMI_BACKEND_URL:?PULUMI_BACKEND_URL is not set}"
pulumi install
pulumi stack select "${stack}"

pulumi config set --stack "${stack}" pixtools:apiImageDigest "$2"
pulumi config set --stack "${stack}" pixtools:workerStandardImageDigest "$3"
pulumi config set --stack "${stack}" pixtools:workerMlImageDigest "$4"

pulumi up --stack "${stack}" --yes --diff --suppress-outputs
