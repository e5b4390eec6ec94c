#!/usr/bin/env bash
# The pages' translations: collect every msgid into isvapp/translations/messages.pot, merge them
# into each language's messages.po (new ones come with an empty msgstr to fill in; ones no
# longer used turn into #~ comments), then compile messages.mo. Commit the .po and the .mo:
# the app reads the .mo and never compiles (isvapp/dashboard/i18n.py says why), and
# tests/test_i18n.py fails when a msgid lacks Chinese or the .mo disagrees with the .po.
#   scripts/translations.sh          extract, update, compile
#   scripts/translations.sh compile  only compile (after editing msgstrs)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/pybabel ] || . scripts/venv.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the extractor in babel.cfg imports this isvapp
dir=isvapp/translations
if [ "${1:-}" != compile ]; then
  .venv/bin/pybabel extract -F "$dir/babel.cfg" -o "$dir/messages.pot" --project isvapp --version 0.1.0 \
    --sort-by-file --width 100 --add-comments TRANSLATORS: isvapp
  .venv/bin/pybabel update -i "$dir/messages.pot" -d "$dir" --width 100 --no-fuzzy-matching
fi
.venv/bin/pybabel compile -d "$dir" --statistics
