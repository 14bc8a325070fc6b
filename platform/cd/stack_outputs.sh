#!/usr/bin/env bash
# Print one stack output (plain values only; secrets stay hidden).
#
# Usage: platform/cd/stack_outputs.sh STACK OUTPUT [JQ_FILTER]
set -euo pipefail

if [ "$#" -lt 2 ]; then
  echo "usage: $0 STACK OUTPUT [JQ_FILTER]" >&2
  exit 2
fi
stack="$1"
output="$2"
filter="${3:-.}"

cd "$(dirname "$0")/../../pulumi"
pulumi stack output --stack "${stack}" --json "${output}" | jq -er "${filter}"
