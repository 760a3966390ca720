#!/usr/bin/env bash
# Imports the code sets make run finds (idempotent: a version already imported is skipped):
#   ICD-10-CM  icd10cm-codes-YYYY.txt or icd10cm-order-YYYY.txt (CDC/CMS, with the category, section
#              and chapter CSVs next to it when present)
#   HCPCS      hcpcs_level2_YYYY.csv (or the CMS ANWEB CSV)
#   CPT        cpt*.csv, only from data/codes (AMA-licensed: bring your own, never committed)
# It looks in data/codes first, then in $BILLY_SHARED_DATA (default ../shared/data). Progress goes to
# stderr; a failed import fails the script. Missing files are normal (CPT is never shipped) and only
# reported.
set -euo pipefail
bin=${BIN:-bin/billy}
dirs=(data/codes "${BILLY_SHARED_DATA:-../shared/data}")

say() { echo "codes: $*" >&2; }

# first SUB PATTERN... prints the newest file (the last in name order, so the latest year) matching
# a PATTERN in the first search directory (or its SUB folder) that has one. It always succeeds:
# finding nothing is an empty answer, not an error, which matters under set -e, where a failing
# $(first ...) would end the script.
first() {
  local sub=$1 d p m found
  shift
  for d in "${dirs[@]}"; do
    found=
    for p in "$@"; do
      # shellcheck disable=SC2086
      for m in $d/$p $d/$sub/$p; do
        [ -f "$m" ] && found=$m
      done
      [ -n "$found" ] && break
    done
    if [ -n "$found" ]; then
      echo "$found"
      return 0
    fi
  done
  return 0
}

import() { # SYSTEM FILE
  say "importing $1 from $2 (skipped when this version is already imported)"
  "$bin" codes import "$1" "$2" --if-missing
}

icd=$(first icd10cm 'icd10cm-codes-*.txt' 'icd10cm-order-*.txt')
hcpcs=$(first hcpcs 'hcpcs_level2_*.csv')
cpt=$(first cpt 'cpt*.csv')

if [ -n "$icd" ]; then
  import icd10cm "$icd"
else
  cat >&2 <<TXT
codes: No ICD-10-CM code file found (looked in ${dirs[*]}), so transcripts cannot be coded yet.
Download the FY code files from https://www.cms.gov/medicare/coding-billing/icd-10-codes (or
https://www.cdc.gov/nchs/icd/icd-10-cm/files.html), put icd10cm-codes-YYYY.txt in data/codes/ and run
make run again (or: $bin codes import icd10cm FILE).
TXT
fi
if [ -n "$hcpcs" ]; then
  import hcpcs "$hcpcs"
else
  say "no HCPCS Level II file found (hcpcs_level2_YYYY.csv): HCPCS codes are accepted by code only"
fi
if [ -n "$cpt" ] && [[ "$cpt" == data/codes/* ]]; then
  import cpt "$cpt"
else
  say "no CPT file in data/codes (cpt*.csv, your own licensed copy): CPT codes are accepted by code only"
fi
