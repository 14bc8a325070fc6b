#!/usr/bin/env bash
# Build one service image from its PEX in dist/ and push it to ECR.
# Prints the pushed manifest digest (sha256:...) on stdout.
#
# Usage: platform/cd/push_image.sh SERVICE REPOSITORY_URL TAG
# Run from the repository root after `pants package` and an ECR login.
set -euo pipefail

if [ "$#" -ne 3 ]; then
  echo "usage: $0 SERVICE REPOSITORY_URL TAG" >&2
  exit 2
fi
service="$1"
repository="$2"
tag="$3"

if [ ! -f "dist/packages.${service}/${service}.pex" ]; then
  echo "missing dist/packages.${service}/${service}.pex; run pants package first" >&2
  exit 1
fi

metadata="$(mktemp)"
trap 'rm -f "${metadata}"' EXIT

docker buildx build \
  --file "packages/${service}/Dockerfile" \
  --tag "${repository}:${tag}" \
  --provenance=false \
  --metadata-file "${metadata}" \
  --push \
  dist >&2

jq -er '."containerimage.digest"' "${metadata}"
