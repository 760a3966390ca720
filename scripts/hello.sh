#!/usr/bin/env bash
# Prints what a newcomer can try once make run has started Billy: the URLs, then commands to paste
# into another terminal, between the marker lines "### try it ###" and "### end ###". make smoke
# runs exactly the lines between the markers, taken from this script's output, against a server it
# started, so what is printed is what CI checks.
#
# The commands reflect the environment make run serves with (BILLY_BASE_URL, BILLY_DATABASE_URL,
# BILLY_MASTER_KEY_FILE, BIN) and spell out what differs from the defaults, since they run in
# another terminal, without make run's environment.
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true # bash 5.2: "&" in a replacement stays "&"

site=${BILLY_BASE_URL:-http://localhost:8080}
site=${site%/}
bin=${BIN:-bin/billy}

# The variables an admin command (dev-token) needs to act for this server (its issuer is the base
# URL), to find its database and its key: what differs from the defaults.
env_prefix=
if [ "$site" != http://localhost:8080 ]; then
  env_prefix+="BILLY_BASE_URL=$site "
fi
if [ -n "${BILLY_DATABASE_URL:-}" ] && [ "$BILLY_DATABASE_URL" != "postgres://postgres@127.0.0.1:5432/billy?sslmode=disable" ]; then
  env_prefix+="BILLY_DATABASE_URL='$BILLY_DATABASE_URL' "
fi
key_note=
if [ -n "${BILLY_MASTER_KEY_FILE:-}" ]; then
  key=${BILLY_MASTER_KEY_FILE#"$PWD/"}
  env_prefix+="BILLY_MASTER_KEY_FILE=$key "
elif [ -n "${BILLY_MASTER_KEY:-}" ]; then
  key_note="# (dev-token needs BILLY_MASTER_KEY set as for the server)"
fi
base_flag=
if [ "$site" != http://localhost:8080 ]; then
  base_flag=" --base $site"
fi

# The commands, with @NAME@ for what depends on the environment; $ and the rest are literal.
IFS= read -r -d '' try <<'SH' || true
# 1. A token for curl, signed directly with the server's key (an administrator's shortcut).
@KEYNOTE@
TOKEN=$(@ENV@@BIN@ dev-token --scope 'user/*.cruds')
FHIR=@FHIR@
AUTH="Authorization: Bearer $TOKEN"
curl -s "$FHIR/Patient?name=rivera" -H "$AUTH"
curl -s "$FHIR/Patient/_history?_count=5" -H "$AUTH"

# 2. The real OAuth flow: authorization code with PKCE S256 for the public client demo-app, as the
#    user demo (login, patient picker, consent, code exchange; see billy dev-login --help).
USER_TOKEN=$(@BIN@ dev-login@BASE@ --password billy-demo-password)
curl -s "$FHIR/Patient" -H "Authorization: Bearer $USER_TOKEN"

# 3. Transcript to draft Claim: a patient, a visit with the demo doctor, a coverage with the demo
#    payer, then the visit's transcript as a DocumentReference, which starts a coding run (a Task).
post() { curl -s -o /dev/null -w '%header{location}' -X POST "$FHIR/$1" -H "$AUTH" -H 'Content-Type: application/fhir+json' --data-binary @- | sed 's|.*/fhir/||; s|/_history/.*||'; }
find1() { curl -s "$FHIR/$1" -H "$AUTH" | grep -o '"fullUrl":"[^"]*"' | head -n 1 | sed 's|.*/fhir/||; s|"$||'; }
DOCTOR=$(find1 'Practitioner?identifier=http://hl7.org/fhir/sid/us-npi%7C1811223344')
PAYER=$(find1 'Organization?identifier=http://example.org/payer-id%7CDEMOPAYER')
PATIENT=$(post Patient <<JSON
{"resourceType": "Patient", "name": [{"family": "Okafor", "given": ["Grace"]}], "gender": "female", "birthDate": "1958-08-08"}
JSON
)
ENCOUNTER=$(post Encounter <<JSON
{"resourceType": "Encounter", "status": "finished", "subject": {"reference": "$PATIENT"},
 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
 "participant": [{"individual": {"reference": "$DOCTOR"}}],
 "period": {"start": "2026-01-12T10:00:00Z", "end": "2026-01-12T10:25:00Z"}}
JSON
)
post Coverage <<JSON
{"resourceType": "Coverage", "status": "active", "beneficiary": {"reference": "$PATIENT"}, "payor": [{"reference": "$PAYER"}]}
JSON
NOTE='Follow-up visit for high blood pressure. She reports occasional morning headaches and no chest
pain. Blood pressure today is 152/96, last visit 148/94. Assessment: essential hypertension, not at
goal. Plan: increase lisinopril to 20 mg daily, home blood pressure log, recheck in four weeks.'
DOC=$(post DocumentReference <<JSON
{"resourceType": "DocumentReference", "status": "current", "subject": {"reference": "$PATIENT"},
 "context": {"encounter": [{"reference": "$ENCOUNTER"}]},
 "content": [{"attachment": {"contentType": "text/plain", "data": "$(printf %s "$NOTE" | base64 | tr -d '\n')"}}]}
JSON
)
echo "$DOC is being coded"
# Wait for its run to finish, then read the run (a Task) and the draft Claim.
for i in $(seq 60); do curl -s "$FHIR/Task?focus=$DOC&status=completed,failed,on-hold" -H "$AUTH" | grep -q '"resourceType":"Task"' && break; sleep 1; done
curl -s "$FHIR/Task?focus=$DOC" -H "$AUTH"
curl -s "$FHIR/Claim?patient=$PATIENT" -H "$AUTH"
SH

try=${try//@ENV@/$env_prefix}
try=${try//@BIN@/$bin}
try=${try//@FHIR@/$site/fhir}
try=${try//@BASE@/$base_flag}
if [ -n "$key_note" ]; then
  try=${try//@KEYNOTE@/$key_note}
else
  try=${try//@KEYNOTE@$'\n'/}
fi

cat <<TXT

Billy is starting on $site with the demo data loaded; authorization is on (SMART on FHIR).
  FHIR base    $site/fhir  (GET $site/fhir/metadata needs no token)
  health       $site/healthz  ready $site/readyz  metrics $site/metrics
  demo login   user demo, password billy-demo-password, for the public SMART client demo-app
               (PKCE S256, redirect URI http://localhost:9000/callback)
  review app   $site/apps/review/  (Billy Review: sign in as demo, pick a patient, review a draft Claim)

Try it from another terminal, in this directory (bash and curl 7.83 or later; make smoke runs
exactly the lines between the markers):

### try it ###
$try
### end ###

Transcribing encounter audio also needs a speech-to-text engine (BILLY_STT_URL or
BILLY_WHISPER_MODEL, see README.md); coding transcripts needs the ICD-10-CM code file (see above).
TXT
