#!/bin/sh
# Regenerates src/api/gen from proto/ with buf and ts-proto from the npm registry (no system protoc).
set -eu
cd "$(dirname "$0")/.."
rm -rf src/api/gen
./node_modules/.bin/buf generate
echo "generated: $(find src/api/gen -name '*.ts' | wc -l) files in src/api/gen"
