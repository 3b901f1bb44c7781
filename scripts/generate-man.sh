#!/usr/bin/env bash
# Regenerates man/ from the command tree, then adds each page's EXIT STATUS and EXAMPLES from
# man/extra/PAGE.txt and reflows the text for `mandoc -T lint` (scripts/finish-man.py).
# ManPageTests fails when the pages and --help disagree, when a page lacks its sections, or when
# mandoc finds anything to report.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -f man/*.1
swift package --allow-writing-to-package-directory generate-manual --multi-page \
    --output-directory man --authors "the smpctl developers"
python3 scripts/finish-man.py man
