#!/usr/bin/env bash
# npm run lint: eslint, the Prettier check and the import-cycle check, side by side (eslint's type
# checking takes most of the time; the other two fit beside it on a second core). The Prettier cache
# (node_modules/.cache) speeds a repeated run; eslint is not cached, as its type-aware rules depend
# on other files than the one they report on. Fails when any fails.
set -u
cd "$(dirname "$0")/.."
npx eslint . &
eslint=$!
npx prettier --check --log-level warn --cache --cache-location node_modules/.cache/prettier/cache.json . &
prettier=$!
npm run --silent lint:cycles &
madge=$!
status=0
wait $eslint || { echo "lint: eslint found problems" >&2; status=1; }
wait $prettier || { echo "lint: files not formatted (npm run format)" >&2; status=1; }
wait $madge || { echo "lint: import cycles" >&2; status=1; }
exit $status
