// A real OAuth 2.0 authorization server for jwt-authn-wasm's tests: oidc-provider (MIT,
// panva/node-oidc-provider) on 127.0.0.1, plain HTTP, configured by the caller.
//
//   node server.mjs --config FILE [--watch-stdin]
//   node server.mjs --config-json '{"clients": [...]}' [--watch-stdin]
//
// What it serves (oidc-provider's own endpoints): discovery, /jwks, /token (client_credentials
// and, added here, RFC 8693 token exchange), /token/introspection (RFC 7662),
// /token/revocation (RFC 7009). Resource indicators (RFC 8707) choose a token's format: a
// `resource` naming a configured resource server gives its `aud`, scopes, lifetime and format
// (`at+jwt` or opaque); no `resource` gives an opaque token without `aud`.
//
// Test hooks under /__admin/ (never OAuth): GET counts (requests per endpoint, grant type and
// client), GET requests (the last ones, secrets removed), PUT fault (make an endpoint answer
// with a status, late, never, with garbage, or by resetting the connection).
//
// Once listening it prints one line on stdout:  authserver: listening {"port":N,"issuer":"..."}
// Errors and oidc-provider's warnings go to stderr, one bounded line each; a client secret is
// never printed. With --watch-stdin it exits when stdin closes (the test process is gone).
// The configuration is described in README.md ("Authorization server for tests") and by
// `CONFIG_KEYS` below; unknown keys are refused, naming the key.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

// oidc-provider is imported once the configuration has been checked (see "Start"): loading it
// takes most of the start-up time, which a refused configuration need not pay.
let Provider;
let errors;

const HERE = path.dirname(fileURLToPath(import.meta.url));
const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const TOKEN_TYPE = {
  access_token: 'urn:ietf:params:oauth:token-type:access_token',
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
  id_token: 'urn:ietf:params:oauth:token-type:id_token',
};
const LINE_MAX = 300;
const REQUEST_LOG_MAX = 500;

// ---------------------------------------------------------------------------------------------
// Configuration

const CONFIG_KEYS = {
  port: 'listening port on 127.0.0.1; 0 picks a free one (default 0)',
  issuer: 'issuer URL (default http://127.0.0.1:<port>)',
  signing_keys: '[{kid, alg, pem_file | pem | jwk}]: private signing keys (default keys/rs256.pem RS256, keys/es256.pem ES256)',
  clients: '[{client_id, client_secret, grant_types, token_endpoint_auth_method, extra_claims}]',
  scopes: 'scopes a client may ask for without a resource indicator',
  resource_servers: '{identifier: {audience, scope, format: jwt|opaque, alg, ttl}}',
  access_token_ttl: 'lifetime in seconds of tokens without a resource server (default 600)',
  clock_tolerance: 'seconds of clock skew accepted on tokens presented to the server (default 15)',
  token_exchange: '{subject_issuers: [{issuer, jwks, audiences}], bad_token_error: invalid_grant|invalid_request}',
  state_file: 'file that keeps issued tokens across a restart (default: memory only)',
};
const CLIENT_KEYS = ['client_id', 'client_secret', 'grant_types', 'token_endpoint_auth_method', 'extra_claims'];
const RESOURCE_KEYS = ['audience', 'scope', 'format', 'alg', 'ttl'];
const EXCHANGE_KEYS = ['subject_issuers', 'bad_token_error'];
const ISSUER_KEYS = ['issuer', 'jwks', 'audiences'];
const ALGS = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']);

function fail(message) {
  process.stderr.write(`authserver: ${bounded(message)}\n`);
  process.exit(2);
}

function bounded(text) {
  const line = String(text).replace(/[\r\n]+/g, ' ');
  return line.length > LINE_MAX ? `${line.slice(0, LINE_MAX)}...` : line;
}

function onlyKeys(object, allowed, where) {
  if (object === null || typeof object !== 'object' || Array.isArray(object)) {
    fail(`config: ${where} must be an object`);
  }
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) fail(`config: unknown key ${where}.${key}; known: ${allowed.join(', ')}`);
  }
}

function seconds(value, where, fallback) {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0) fail(`config: ${where} must be a whole number of seconds`);
  return value;
}

function scopeList(value, where) {
  if (value === undefined) return [];
  const list = typeof value === 'string' ? value.split(' ').filter(Boolean) : value;
  if (!Array.isArray(list) || !list.every((s) => typeof s === 'string' && s && !/\s/.test(s))) {
    fail(`config: ${where} must be a space-separated string or an array of scope names`);
  }
  return list;
}

function readArgs(argv) {
  let config;
  let watchStdin = false;
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '--config') {
      const file = argv[++i] ?? fail('--config needs a file');
      try {
        config = JSON.parse(fs.readFileSync(file, 'utf8'));
      } catch (err) {
        fail(`--config ${file}: ${err.message}`);
      }
    } else if (arg === '--config-json') {
      try {
        config = JSON.parse(argv[++i] ?? fail('--config-json needs JSON'));
      } catch (err) {
        fail(`--config-json: ${err.message}`);
      }
    } else if (arg === '--watch-stdin') {
      watchStdin = true;
    } else {
      fail(`unknown argument ${arg}; usage: server.mjs --config FILE | --config-json JSON [--watch-stdin]`);
    }
  }
  return { config: config ?? {}, watchStdin };
}

/** Turns the caller's JSON into checked settings; exits naming the first bad field. */
function settingsFrom(raw) {
  onlyKeys(raw, Object.keys(CONFIG_KEYS), 'config');
  const port = raw.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail('config: port must be 0..65535');
  if (raw.issuer !== undefined && (typeof raw.issuer !== 'string' || !isUrl(raw.issuer))) {
    fail('config: issuer must be an absolute URL');
  }

  const signingKeys = (raw.signing_keys ?? [
    { kid: 'authserver-rs256', alg: 'RS256', pem_file: path.join(HERE, 'keys/rs256.pem') },
    { kid: 'authserver-es256', alg: 'ES256', pem_file: path.join(HERE, 'keys/es256.pem') },
  ]).map((key, i) => privateJwk(key, `signing_keys[${i}]`));
  if (!signingKeys.some((k) => k.alg === 'RS256')) fail('config: signing_keys needs an RS256 key (oidc-provider signs with RS256 by default)');

  const clients = (raw.clients ?? []).map((client, i) => {
    const where = `clients[${i}]`;
    onlyKeys(client, CLIENT_KEYS, where);
    if (typeof client.client_id !== 'string' || !client.client_id) fail(`config: ${where}.client_id is required`);
    if (typeof client.client_secret !== 'string' || !client.client_secret) fail(`config: ${where}.client_secret is required`);
    const method = client.token_endpoint_auth_method ?? 'client_secret_basic';
    if (!['client_secret_basic', 'client_secret_post'].includes(method)) {
      fail(`config: ${where}.token_endpoint_auth_method must be client_secret_basic or client_secret_post`);
    }
    const grantTypes = client.grant_types ?? ['client_credentials'];
    if (!Array.isArray(grantTypes) || !grantTypes.every((g) => ['client_credentials', EXCHANGE].includes(g))) {
      fail(`config: ${where}.grant_types may hold client_credentials and ${EXCHANGE}`);
    }
    if (client.extra_claims !== undefined && (typeof client.extra_claims !== 'object' || Array.isArray(client.extra_claims))) {
      fail(`config: ${where}.extra_claims must be an object`);
    }
    return {
      client_id: client.client_id,
      client_secret: client.client_secret,
      grant_types: grantTypes,
      token_endpoint_auth_method: method,
      extra_claims: client.extra_claims,
    };
  });

  const resourceServers = new Map();
  for (const [identifier, rs] of Object.entries(raw.resource_servers ?? {})) {
    const where = `resource_servers.${identifier}`;
    if (!isUrl(identifier)) fail(`config: ${where}: a resource server identifier must be an absolute URI`);
    onlyKeys(rs, RESOURCE_KEYS, where);
    const format = rs.format ?? 'jwt';
    if (!['jwt', 'opaque'].includes(format)) fail(`config: ${where}.format must be jwt or opaque`);
    const alg = rs.alg ?? 'RS256';
    if (!signingKeys.some((k) => k.alg === alg)) fail(`config: ${where}.alg ${alg} has no key in signing_keys`);
    if (rs.audience !== undefined && typeof rs.audience !== 'string') fail(`config: ${where}.audience must be a string`);
    resourceServers.set(identifier, {
      audience: rs.audience ?? identifier,
      scope: scopeList(rs.scope, `${where}.scope`).join(' '),
      format,
      alg,
      ttl: seconds(rs.ttl, `${where}.ttl`, 600) || fail(`config: ${where}.ttl must be at least 1`),
    });
  }

  const exchange = raw.token_exchange ?? {};
  onlyKeys(exchange, EXCHANGE_KEYS, 'token_exchange');
  const badTokenError = exchange.bad_token_error ?? 'invalid_grant';
  if (!['invalid_grant', 'invalid_request'].includes(badTokenError)) {
    fail('config: token_exchange.bad_token_error must be invalid_grant or invalid_request');
  }
  const subjectIssuers = (exchange.subject_issuers ?? []).map((issuer, i) => {
    const where = `token_exchange.subject_issuers[${i}]`;
    onlyKeys(issuer, ISSUER_KEYS, where);
    if (typeof issuer.issuer !== 'string' || !issuer.issuer) fail(`config: ${where}.issuer is required`);
    const keys = issuer.jwks?.keys;
    if (!Array.isArray(keys)) fail(`config: ${where}.jwks must be a JWKS ({"keys": [...]})`);
    return {
      issuer: issuer.issuer,
      keys: keys.filter((k) => k && typeof k === 'object' && k.kty !== 'oct'),
      audiences: issuer.audiences === undefined ? undefined : scopeList(issuer.audiences, `${where}.audiences`),
    };
  });

  if (raw.state_file !== undefined && (typeof raw.state_file !== 'string' || !raw.state_file)) {
    fail('config: state_file must be a file path');
  }

  return {
    port,
    issuer: raw.issuer,
    signingKeys,
    clients,
    scopes: scopeList(raw.scopes, 'scopes'),
    resourceServers,
    accessTokenTtl: seconds(raw.access_token_ttl, 'access_token_ttl', 600) || fail('config: access_token_ttl must be at least 1'),
    clockTolerance: seconds(raw.clock_tolerance, 'clock_tolerance', 15),
    exchange: { subjectIssuers, badTokenError },
    stateFile: raw.state_file,
  };
}

function isUrl(text) {
  try {
    return Boolean(new URL(text).protocol);
  } catch {
    return false;
  }
}

function privateJwk(key, where) {
  onlyKeys(key, ['kid', 'alg', 'pem_file', 'pem', 'jwk'], where);
  if (typeof key.kid !== 'string' || !key.kid) fail(`config: ${where}.kid is required`);
  if (!ALGS.has(key.alg)) fail(`config: ${where}.alg must be one of ${[...ALGS].join(', ')}`);
  let jwk;
  try {
    if (key.jwk) {
      jwk = crypto.createPrivateKey({ key: key.jwk, format: 'jwk' }).export({ format: 'jwk' });
    } else {
      const pem = key.pem ?? fs.readFileSync(key.pem_file ?? fail(`config: ${where} needs pem_file, pem or jwk`), 'utf8');
      jwk = crypto.createPrivateKey(pem).export({ format: 'jwk' });
    }
  } catch (err) {
    fail(`config: ${where}: not a private key (${err.message})`);
  }
  return { ...jwk, kid: key.kid, alg: key.alg, use: 'sig' };
}

function publicJwk({ kty, crv, n, e, x, y, kid, alg }) {
  return Object.fromEntries(Object.entries({ kty, crv, n, e, x, y, kid, alg }).filter(([, v]) => v !== undefined));
}

// ---------------------------------------------------------------------------------------------
// Storage: oidc-provider's adapter interface over one in-memory map per model, optionally
// written to `state_file` on every change so that a restarted server still knows its tokens.

class Store {
  constructor(file) {
    this.file = file;
    this.models = new Map();
    if (file && fs.existsSync(file)) {
      const saved = JSON.parse(fs.readFileSync(file, 'utf8'));
      for (const [name, entries] of Object.entries(saved)) this.models.set(name, new Map(Object.entries(entries)));
    }
  }

  model(name) {
    if (!this.models.has(name)) this.models.set(name, new Map());
    return this.models.get(name);
  }

  changed() {
    if (!this.file) return;
    const out = {};
    for (const [name, entries] of this.models) out[name] = Object.fromEntries(entries);
    const tmp = `${this.file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(out));
    fs.renameSync(tmp, this.file);
  }
}

let store;

class Adapter {
  constructor(name) {
    this.entries = store.model(name);
  }

  live(id) {
    const entry = this.entries.get(id);
    if (entry && entry.expiresAt !== null && entry.expiresAt <= Date.now()) {
      this.entries.delete(id);
      return undefined;
    }
    return entry;
  }

  async upsert(id, payload, expiresIn) {
    this.entries.set(id, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : null });
    store.changed();
  }

  async find(id) {
    const entry = this.live(id);
    return entry ? structuredClone(entry.payload) : undefined;
  }

  async findByUid(uid) {
    for (const [id, entry] of this.entries) if (entry.payload.uid === uid && this.live(id)) return structuredClone(entry.payload);
    return undefined;
  }

  async findByUserCode(userCode) {
    for (const [id, entry] of this.entries) if (entry.payload.userCode === userCode && this.live(id)) return structuredClone(entry.payload);
    return undefined;
  }

  async consume(id) {
    const entry = this.live(id);
    if (entry) {
      entry.payload.consumed = Math.floor(Date.now() / 1000);
      store.changed();
    }
  }

  async destroy(id) {
    if (this.entries.delete(id)) store.changed();
  }

  async revokeByGrantId(grantId) {
    let any = false;
    for (const entries of store.models.values()) {
      for (const [id, entry] of entries) {
        if (entry.payload.grantId === grantId) any = entries.delete(id) || any;
      }
    }
    if (any) store.changed();
  }
}

// ---------------------------------------------------------------------------------------------
// JWS verification for token exchange (subject tokens minted by the tests, and this server's
// own JWT access tokens). The verifier picks the algorithm family from the key, never from the
// token alone, and knows no `none` and no HMAC.

const HASH = { 256: 'sha256', 384: 'sha384', 512: 'sha512' };
const CURVE = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };

function b64json(segment) {
  const value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('not a JSON object');
  return value;
}

/** The unverified parts of a compact JWS, or undefined if `token` is not one. */
function parseJws(token) {
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) return undefined;
  try {
    return { header: b64json(parts[0]), payload: b64json(parts[1]), input: `${parts[0]}.${parts[1]}`, signature: Buffer.from(parts[2], 'base64url') };
  } catch {
    return undefined;
  }
}

function keyFits(jwk, alg) {
  if (jwk.alg !== undefined && jwk.alg !== alg) return false;
  if (jwk.use !== undefined && jwk.use !== 'sig') return false;
  if (alg.startsWith('RS') || alg.startsWith('PS')) return jwk.kty === 'RSA';
  if (alg.startsWith('ES')) return jwk.kty === 'EC' && jwk.crv === CURVE[alg];
  return alg === 'EdDSA' && jwk.kty === 'OKP' && jwk.crv === 'Ed25519';
}

function signatureValid(jws, jwk) {
  const { alg } = jws.header;
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const data = Buffer.from(jws.input);
  if (alg === 'EdDSA') return crypto.verify(null, data, key, jws.signature);
  const hash = HASH[alg.slice(2)];
  if (alg.startsWith('RS')) return crypto.verify(hash, data, { key, padding: crypto.constants.RSA_PKCS1_PADDING }, jws.signature);
  if (alg.startsWith('PS')) {
    return crypto.verify(hash, data, { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(alg.slice(2)) / 8 }, jws.signature);
  }
  return crypto.verify(hash, data, { key, dsaEncoding: 'ieee-p1363' }, jws.signature);
}

/**
 * Verifies `jws` against `trusted` ({issuer, keys, audiences}); returns the claims or throws an
 * Error whose message says what failed (never the token).
 */
function verifyJws(jws, trusted, clockTolerance) {
  const { alg, kid } = jws.header;
  if (!ALGS.has(alg)) throw new Error(`alg ${JSON.stringify(alg)} is not accepted`);
  if (jws.header.crit !== undefined) throw new Error('crit is not supported');
  const candidates = trusted.keys.filter((k) => (kid === undefined || k.kid === kid) && keyFits(k, alg));
  if (!candidates.length) throw new Error(`no key of ${trusted.issuer} fits kid ${JSON.stringify(kid)} and alg ${alg}`);
  if (!candidates.some((k) => signatureValid(jws, k))) throw new Error('signature invalid');
  const claims = jws.payload;
  const now = Math.floor(Date.now() / 1000);
  if (claims.iss !== trusted.issuer) throw new Error('iss mismatch');
  if (typeof claims.exp !== 'number') throw new Error('exp missing');
  if (claims.exp + clockTolerance <= now) throw new Error('expired');
  if (claims.nbf !== undefined && (typeof claims.nbf !== 'number' || claims.nbf - clockTolerance > now)) throw new Error('not yet valid');
  if (typeof claims.sub !== 'string' || !claims.sub) throw new Error('sub missing');
  if (trusted.audiences) {
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.some((a) => trusted.audiences.includes(a))) throw new Error('aud not accepted');
  }
  return claims;
}

// ---------------------------------------------------------------------------------------------
// Token exchange (RFC 8693) as an oidc-provider grant type.

function tokenExchangeGrant(settings, ownKeys, exchangeClaims) {
  const BadToken = settings.exchange.badTokenError === 'invalid_request'
    ? (why) => new errors.InvalidRequest(why)
    : (why) => Object.assign(new errors.InvalidGrant(why), { error_description: why });

  const self = () => ({ issuer: provider.issuer, keys: ownKeys, audiences: undefined });

  /** A token this server issued and still holds (opaque), as {sub, clientId, scope, act}. */
  async function ownOpaque(value) {
    const found = (await provider.AccessToken.find(value)) ?? (await provider.ClientCredentials.find(value));
    if (!found || !found.isValid) return undefined;
    return { sub: found.accountId ?? found.clientId, clientId: found.clientId, scope: found.scope, act: found.extra?.act };
  }

  async function subjectOf(value, type) {
    const jws = parseJws(value);
    if (!jws) {
      if (type !== TOKEN_TYPE.access_token) throw BadToken('subject_token is not a JWT');
      const own = await ownOpaque(value);
      if (!own) throw BadToken('subject_token is not active');
      return own;
    }
    const iss = jws.payload.iss;
    const trusted = iss === provider.issuer ? self() : settings.exchange.subjectIssuers.find((t) => t.issuer === iss);
    if (!trusted) throw BadToken('subject_token issuer is not trusted');
    let claims;
    try {
      claims = verifyJws(jws, trusted, settings.clockTolerance);
    } catch (err) {
      throw BadToken(`subject_token ${err.message}`);
    }
    return { sub: claims.sub, clientId: claims.client_id, scope: typeof claims.scope === 'string' ? claims.scope : undefined, act: claims.act };
  }

  async function actorOf(value, client) {
    const jws = parseJws(value);
    let actor;
    if (jws) {
      if (jws.payload.iss !== provider.issuer) throw BadToken('actor_token was not issued by this server');
      try {
        const claims = verifyJws(jws, self(), settings.clockTolerance);
        actor = { clientId: claims.client_id };
      } catch (err) {
        throw BadToken(`actor_token ${err.message}`);
      }
    } else {
      actor = await ownOpaque(value);
      if (!actor) throw BadToken('actor_token is not active');
    }
    if (actor.clientId !== client.clientId) throw BadToken('actor_token was issued to another client');
    return actor;
  }

  function targetOf(params) {
    const list = (v) => (v === undefined ? [] : [v].flat());
    const audiences = list(params.audience);
    const resources = list(params.resource);
    if (audiences.length + resources.length === 0) throw new errors.InvalidRequest('audience or resource is required');
    const found = new Set();
    for (const r of resources) {
      if (!settings.resourceServers.has(r)) throw new errors.InvalidTarget(`unknown resource ${r}`);
      found.add(r);
    }
    for (const a of audiences) {
      const match = [...settings.resourceServers].find(([id, rs]) => rs.audience === a || id === a);
      if (!match) throw new errors.InvalidTarget(`unknown audience ${a}`);
      found.add(match[0]);
    }
    if (found.size !== 1) throw new errors.InvalidTarget('only one target service per exchange');
    const [identifier] = found;
    return { identifier, rs: settings.resourceServers.get(identifier) };
  }

  return async function tokenExchange(ctx, next) {
    const { params, client } = ctx.oidc;
    for (const name of ['subject_token', 'subject_token_type']) {
      if (!params[name]) throw new errors.InvalidRequest(`missing required parameter '${name}'`);
    }
    if (!Object.values(TOKEN_TYPE).includes(params.subject_token_type)) {
      throw new errors.InvalidRequest('unsupported subject_token_type');
    }
    if (Boolean(params.actor_token) !== Boolean(params.actor_token_type)) {
      throw new errors.InvalidRequest('actor_token and actor_token_type go together');
    }
    if (params.actor_token_type && params.actor_token_type !== TOKEN_TYPE.access_token && params.actor_token_type !== TOKEN_TYPE.jwt) {
      throw new errors.InvalidRequest('unsupported actor_token_type');
    }
    const requested = params.requested_token_type;
    if (requested !== undefined && requested !== TOKEN_TYPE.access_token && requested !== TOKEN_TYPE.jwt) {
      throw new errors.InvalidRequest('unsupported requested_token_type');
    }
    const { identifier, rs } = targetOf(params);
    const subject = await subjectOf(params.subject_token, params.subject_token_type);
    const actor = params.actor_token ? await actorOf(params.actor_token, client) : undefined;

    // Scope: what was asked for (or else what the subject had), never beyond the target's.
    const allowed = new Set(rs.scope.split(' ').filter(Boolean));
    const asked = (params.scope ?? subject.scope ?? '').split(' ').filter(Boolean);
    if (params.scope !== undefined) {
      const beyond = asked.filter((s) => !allowed.has(s));
      if (beyond.length) throw new errors.InvalidScope(`scope not available for ${identifier}`, beyond.join(' '));
    }
    const scope = asked.filter((s) => allowed.has(s)).join(' ') || undefined;

    const format = requested === TOKEN_TYPE.jwt ? 'jwt' : rs.format;
    const token = new provider.AccessToken({ accountId: subject.sub, client, scope, gty: EXCHANGE });
    token.resourceServer = new provider.ResourceServer(identifier, resourceServerInfo(rs, format));
    if (actor) {
      const act = { sub: actor.clientId };
      if (subject.act && typeof subject.act === 'object') act.act = subject.act;
      exchangeClaims.set(token, { act });
    }
    ctx.oidc.entity('AccessToken', token);
    const value = await token.save();
    ctx.body = {
      access_token: value,
      issued_token_type: format === 'jwt' && requested === TOKEN_TYPE.jwt ? TOKEN_TYPE.jwt : TOKEN_TYPE.access_token,
      token_type: 'Bearer',
      expires_in: token.expiration,
      scope,
    };
    if (typeof next === 'function') await next();
  };
}

function resourceServerInfo(rs, format = rs.format) {
  return {
    audience: rs.audience,
    scope: rs.scope,
    accessTokenFormat: format,
    accessTokenTTL: rs.ttl,
    jwt: { sign: { alg: rs.alg } },
  };
}

// ---------------------------------------------------------------------------------------------
// Counting, request log and faults.

const ROUTES = {
  '/token': 'token',
  '/token/introspection': 'introspection',
  '/token/revocation': 'revocation',
  '/jwks': 'jwks',
  '/.well-known/openid-configuration': 'discovery',
  '/.well-known/oauth-authorization-server': 'discovery',
};

const counts = { endpoints: {}, grants: {}, clients: {} };
const requestLog = [];
let fault = { endpoint: '*', mode: 'none' };

function bump(table, key) {
  table[key] = (table[key] ?? 0) + 1;
}

function record(rec) {
  bump(counts.endpoints, rec.endpoint);
  if (rec.grant_type) bump(counts.grants, rec.grant_type);
  if (rec.client_id) {
    counts.clients[rec.client_id] ??= {};
    bump(counts.clients[rec.client_id], rec.endpoint);
  }
  requestLog.push(rec);
  if (requestLog.length > REQUEST_LOG_MAX) requestLog.shift();
}

function basicClientId(req) {
  const match = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (!match) return undefined;
  const user = Buffer.from(match[1], 'base64').toString('utf8').split(':')[0];
  try {
    return decodeURIComponent(user.replace(/\+/g, '%20'));
  } catch {
    return user;
  }
}

function redacted(params) {
  if (!params) return undefined;
  const out = {};
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && k !== 'client_secret' && k !== 'client_assertion') out[k] = v;
  }
  return out;
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const FAULT_MODES = ['none', 'status', 'delay', 'hang', 'garbage', 'reset'];

async function admin(req, res, url) {
  if (req.method === 'GET' && url.pathname === '/__admin/counts') return sendJson(res, 200, counts);
  if (req.method === 'GET' && url.pathname === '/__admin/requests') return sendJson(res, 200, requestLog);
  if (req.method === 'PUT' && url.pathname === '/__admin/fault') {
    let wanted;
    try {
      wanted = JSON.parse(await readBody(req));
    } catch {
      return sendJson(res, 400, { error: 'body must be JSON' });
    }
    const endpoint = wanted.endpoint ?? '*';
    if (!FAULT_MODES.includes(wanted.mode)) return sendJson(res, 400, { error: `mode must be one of ${FAULT_MODES.join(', ')}` });
    if (endpoint !== '*' && !Object.values(ROUTES).includes(endpoint)) return sendJson(res, 400, { error: 'unknown endpoint' });
    fault = { endpoint, mode: wanted.mode, status: wanted.status ?? 503, delay_ms: wanted.delay_ms ?? 0 };
    process.stderr.write(`authserver: fault ${bounded(JSON.stringify(fault))}\n`);
    return sendJson(res, 200, fault);
  }
  return sendJson(res, 404, { error: 'unknown admin path' });
}

/** Applies the current fault to a request; true if the request was answered here. */
async function applyFault(endpoint, req, res) {
  if (fault.mode === 'none' || (fault.endpoint !== '*' && fault.endpoint !== endpoint)) return false;
  switch (fault.mode) {
    case 'status':
      sendJson(res, fault.status, { error: 'server_error', error_description: 'fault injected by the test' });
      return true;
    case 'delay':
      await new Promise((resolve) => { setTimeout(resolve, fault.delay_ms); });
      return false;
    case 'hang':
      req.socket.setTimeout(0);
      return true;
    case 'garbage':
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('<html>not json');
      return true;
    case 'reset':
      req.socket.resetAndDestroy?.() ?? req.socket.destroy();
      return true;
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Start.

const { config, watchStdin } = readArgs(process.argv.slice(2));
const settings = settingsFrom(config);
({ default: Provider, errors } = await import('oidc-provider'));
store = new Store(settings.stateFile);
let provider;
let handle;

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname.startsWith('/__admin/')) {
    admin(req, res, url).catch((err) => sendJson(res, 500, { error: err.message }));
    return;
  }
  const endpoint = ROUTES[url.pathname] ?? 'other';
  const rec = { endpoint, method: req.method, path: url.pathname, client_id: basicClientId(req) };
  if (/^Basic\s/i.test(req.headers.authorization ?? '')) rec.auth_method = 'client_secret_basic';
  req.authserverRecord = rec;
  let logged = false;
  const done = () => {
    if (logged) return;
    logged = true;
    rec.status = res.headersSent ? res.statusCode : 0;
    record(rec);
  };
  res.on('finish', done);
  res.on('close', done);
  if (await applyFault(endpoint, req, res)) return;
  if (!handle) {
    sendJson(res, 503, { error: 'temporarily_unavailable', error_description: 'starting' });
    return;
  }
  handle(req, res);
});

server.on('error', (err) => fail(`listen on 127.0.0.1:${settings.port}: ${err.message}`));
server.listen(settings.port, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = settings.issuer ?? `http://127.0.0.1:${port}`;
  provider = makeProvider(issuer);
  handle = provider.callback();
  process.stdout.write(`authserver: listening ${JSON.stringify({ port, issuer })}\n`);
});

function makeProvider(issuer) {
  const exchangeClaims = new WeakMap();
  const extraByClient = new Map(settings.clients.map((c) => [c.client_id, c.extra_claims]));
  const ownKeys = settings.signingKeys.map(publicJwk);
  const ttl = (ctx, token) => token.resourceServer?.accessTokenTTL ?? settings.accessTokenTtl;

  provider = new Provider(issuer, {
    adapter: Adapter,
    clients: settings.clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: c.grant_types,
      token_endpoint_auth_method: c.token_endpoint_auth_method,
      response_types: [],
      redirect_uris: [],
    })),
    jwks: { keys: settings.signingKeys },
    scopes: ['openid', 'offline_access', ...settings.scopes],
    clockTolerance: settings.clockTolerance,
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // oidc-provider's default, spelt out: any client that authenticates may introspect.
        allowedPolicy: async (ctx, client, token) => client.clientAuthMethod !== 'none' || token.clientId === ctx.oidc.client.clientId,
      },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => undefined,
        useGrantedResource: async () => false,
        getResourceServerInfo: async (ctx, identifier) => {
          const rs = settings.resourceServers.get(identifier);
          if (!rs) throw new errors.InvalidTarget(`unknown resource ${identifier}`);
          return resourceServerInfo(rs);
        },
      },
    },
    ttl: { AccessToken: ttl, ClientCredentials: ttl },
    extraTokenClaims: async (ctx, token) => exchangeClaims.get(token)
      ?? (token.kind === 'ClientCredentials' ? extraByClient.get(token.clientId) : undefined),
    renderError: async (ctx, out) => {
      ctx.type = 'json';
      ctx.body = out;
    },
  });

  provider.use(async (ctx, next) => {
    try {
      await next();
    } finally {
      const rec = ctx.req.authserverRecord;
      if (rec && ctx.oidc) {
        rec.client_id = ctx.oidc.client?.clientId ?? rec.client_id ?? ctx.oidc.params?.client_id;
        rec.grant_type = ctx.oidc.params?.grant_type;
        if (ctx.oidc.params?.client_secret !== undefined) rec.auth_method = 'client_secret_post';
        rec.params = redacted(ctx.oidc.params);
      }
    }
  });

  provider.registerGrantType(
    EXCHANGE,
    tokenExchangeGrant(settings, ownKeys, exchangeClaims),
    ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'audience', 'scope', 'resource', 'requested_token_type'],
    ['audience', 'resource'],
  );

  const report = (where) => (ctx, err) => {
    const description = err.error_description ?? err.message;
    const detail = err.error_detail && err.error_detail !== description ? ` (${err.error_detail})` : '';
    process.stderr.write(`authserver: ${where} ${err.error ?? err.name}: ${bounded(`${description}${detail}`)}\n`);
  };
  for (const event of ['grant.error', 'introspection.error', 'revocation.error', 'jwks.error', 'discovery.error']) {
    provider.on(event, report(event));
  }
  provider.on('server_error', (ctx, err) => process.stderr.write(`authserver: server_error ${bounded(err.stack ?? err.message)}\n`));
  return provider;
}

function shutdown() {
  server.close();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (watchStdin) {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}
