#!/usr/bin/env bash
# Prints what a newcomer can try once `make run` has started Billy.
site=${BILLY_BASE_URL:-http://localhost:8080}
base=$site/fhir
cat <<TXT

Billy is starting on $site with the demo data loaded. Authorization is on (SMART on FHIR).

Get a token for curl (an administrator's shortcut that signs one directly):
  TOKEN=\$(BILLY_MASTER_KEY_FILE=data/master.key bin/billy dev-token --scope 'user/*.cruds')
  curl -s $base/Patient?name=rivera -H "Authorization: Bearer \$TOKEN"
  curl -s -X POST $base/Patient -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/fhir+json' \\
       -d '{"resourceType":"Patient","name":[{"family":"Smith","given":["Ana"]}],"birthDate":"1990-05-01"}'
  curl -s "$base/Patient/_history?_count=5" -H "Authorization: Bearer \$TOKEN"

Or the real OAuth flow with the demo SMART client "demo-app" (public, PKCE S256, redirect
http://localhost:9000/callback; user "demo", password "billy-demo-password"):
  discovery: $base/.well-known/smart-configuration
  authorize: $site/oauth2/authorize?response_type=code&client_id=demo-app&redirect_uri=http://localhost:9000/callback
             &scope=openid%20fhirUser%20launch/patient%20patient/*.rs&state=...&aud=$base&code_challenge=...&code_challenge_method=S256
  token:     POST $site/oauth2/token (grant_type=authorization_code, code, code_verifier, client_id, redirect_uri)

Without a token: $base/metadata   Health: $site/healthz  Ready: $site/readyz  Metrics: $site/metrics
TXT
