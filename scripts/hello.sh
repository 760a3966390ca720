#!/usr/bin/env bash
# Prints what a newcomer can try once `make run` has started Billy.
base=${BILLY_BASE_URL:-http://localhost:8080}/fhir
cat <<TXT

Billy is starting on ${BILLY_BASE_URL:-http://localhost:8080} with the demo data loaded
(development mode: authorization is off until SMART lands).

  curl -s $base/metadata | head -c 300; echo
  curl -s '$base/Patient/_history?_count=5'
  curl -s -X POST $base/Patient -H 'Content-Type: application/fhir+json' \\
       -d '{"resourceType":"Patient","name":[{"family":"Smith","given":["Ana"]}],"birthDate":"1990-05-01"}'
  curl -s -X PUT '$base/Patient?identifier=http://billy.example/mrn|DEMO-0001' -H 'Content-Type: application/fhir+json' \\
       -d '{"resourceType":"Patient","identifier":[{"system":"http://billy.example/mrn","value":"DEMO-0001"}],"name":[{"family":"Rivera"}],"gender":"female"}'
  curl -s $base/_history?_count=3

Health: ${BILLY_BASE_URL:-http://localhost:8080}/healthz  Ready: /readyz  Metrics: /metrics
TXT
