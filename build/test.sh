#!/usr/bin/env bash
# Builds everything and runs every MSTest project of the solution.
# Ends with one summary line "tests: N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
bash build/setup.sh || exit 1
log=$(mktemp)
dotnet test MLNetMedSeg.sln -c Release --nologo 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
passed=$(grep -Eo 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
failed=$(grep -Eo 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
skipped=$(grep -Eo 'Skipped: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
rm -f "$log"
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi   # a build failure counts as a failure
echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$rc"
