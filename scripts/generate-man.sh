#!/usr/bin/env bash
# Regenerates man/ from the command tree. ManPageTests fails when the pages and --help disagree.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -f man/*.1
swift package --allow-writing-to-package-directory generate-manual --multi-page \
    --output-directory man --authors "the smpctl developers"
