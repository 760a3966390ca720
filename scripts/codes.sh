#!/usr/bin/env bash
# Imports the code sets make run finds (idempotent: a version already imported is skipped):
#   ICD-10-CM  icd10cm-codes-YYYY.txt or icd10cm-order-YYYY.txt (CDC/CMS, with the category, section
#              and chapter CSVs next to it when present)
#   HCPCS      hcpcs_level2_YYYY.csv (or the CMS ANWEB CSV)
#   CPT        cpt*.csv, only from data/codes (AMA-licensed: bring your own, never committed)
# It looks in data/codes first, then in $BILLY_SHARED_DATA (default ../shared/data).
set -euo pipefail
bin=${BIN:-bin/billy}
dirs=(data/codes "${BILLY_SHARED_DATA:-../shared/data}")

first() { # first file matching a glob in the search directories
  local sub=$1 pattern=$2 d f
  for d in "${dirs[@]}"; do
    for f in "$d/$pattern" "$d/$sub/$pattern"; do
      # shellcheck disable=SC2086
      for m in $f; do [ -f "$m" ] && { echo "$m"; return; }; done
    done
  done
}

icd=$(first icd10cm 'icd10cm-codes-*.txt'); [ -n "$icd" ] || icd=$(first icd10cm 'icd10cm-order-*.txt')
hcpcs=$(first hcpcs 'hcpcs_level2_*.csv')
cpt=$(first cpt 'cpt*.csv')
[ -n "$icd" ] && "$bin" codes import icd10cm "$icd" --if-missing
[ -n "$hcpcs" ] && "$bin" codes import hcpcs "$hcpcs" --if-missing
[ -n "$cpt" ] && [[ "$cpt" == data/codes/* ]] && "$bin" codes import cpt "$cpt" --if-missing
if [ -z "$icd" ]; then
  cat >&2 <<TXT
No ICD-10-CM code file found, so transcripts cannot be coded yet. Download the FY code files from
https://www.cms.gov/medicare/coding-billing/icd-10-codes (or https://www.cdc.gov/nchs/icd/icd-10-cm/files.html),
put icd10cm-codes-YYYY.txt in data/codes/ and run make run again (or: bin/billy codes import icd10cm FILE).
TXT
fi
exit 0
