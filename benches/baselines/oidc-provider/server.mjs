// node oidc-provider as a baseline for benches/https-vs-oidc-provider.sh:
// OAuth 2.0 client credentials over HTTPS, access tokens as ES256 JWTs (RFC 9068,
// through a resource indicator), one client_secret_basic client and, when a CA for
// client certificates is given, one tls_client_auth client (RFC 8705) whose tokens
// are bound to its certificate (cnf.x5t#S256).
//
//   node server.mjs [PORT]
//
// Environment (all optional):
//   PORT (or the first argument)  port on 127.0.0.1; 0 = any free port (default 8444)
//   HOST                          listen address (default 127.0.0.1)
//   TLS_CERT, TLS_KEY             server certificate and key (PEM); when absent a
//                                 self-signed P-256 certificate for localhost and
//                                 127.0.0.1 is made with `openssl` in a temporary folder
//   CLIENT_CA                     PEM file of the CA(s) client certificates must chain
//                                 to; enables requestCert and the tls_client_auth client
//   RESOURCE                      resource indicator / audience (https://bench.example.com)
//   SCOPE                         scope of the resource (bench:read)
//   SECRET_CLIENT_ID, SECRET_CLIENT_SECRET   client_secret_basic client
//                                 (bench-secret / bench-secret-value)
//   MTLS_CLIENT_ID, MTLS_SUBJECT_DN          tls_client_auth client (bench-mtls / CN=bench-mtls)
//   SIGNING_JWK                   file with a private EC P-256 JWK; default: one made at start
//   KEEPALIVE_SECS                keep-alive idle timeout (default 30, as certbound's
//                                 [https] idle_timeout_secs)
//   TLS_RESUMPTION=1              let clients resume TLS sessions (tickets); default off,
//                                 as certbound, which makes every connection a full handshake
//
// GET /_bench/tls answers {"connections": n, "resumed": n} (TLS connections accepted
// since start, and how many of them resumed a session), to check the premise above.
//
// The token endpoint is POST /oauth/token (as certbound's).
// Prints one line `listening https://HOST:PORT` on stdout once it accepts connections.

import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';

import Provider from 'oidc-provider';

const env = process.env;
const host = env.HOST || '127.0.0.1';
const port = Number(process.argv[2] ?? env.PORT ?? 8444);
const resource = env.RESOURCE || 'https://bench.example.com';
const scope = env.SCOPE || 'bench:read';
const secretClientId = env.SECRET_CLIENT_ID || 'bench-secret';
const secretClientSecret = env.SECRET_CLIENT_SECRET || 'bench-secret-value';
const mtlsClientId = env.MTLS_CLIENT_ID || 'bench-mtls';
const mtlsSubjectDn = env.MTLS_SUBJECT_DN || 'CN=bench-mtls';
const keepAliveSecs = Number(env.KEEPALIVE_SECS || 30);

function selfSignedP256() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oidc-provider-tls-'));
  const key = path.join(dir, 'server.key.pem');
  const cert = path.join(dir, 'server.cert.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { stdio: 'ignore' });
  const out = { key: fs.readFileSync(key), cert: fs.readFileSync(cert) };
  fs.rmSync(dir, { recursive: true, force: true });
  return out;
}

const tls = env.TLS_CERT && env.TLS_KEY
  ? { cert: fs.readFileSync(env.TLS_CERT), key: fs.readFileSync(env.TLS_KEY) }
  : selfSignedP256();

let signingJwk;
if (env.SIGNING_JWK) {
  signingJwk = JSON.parse(fs.readFileSync(env.SIGNING_JWK, 'utf8'));
} else {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  signingJwk = privateKey.export({ format: 'jwk' });
}
signingJwk = { ...signingJwk, use: 'sig', alg: 'ES256' };
signingJwk.kid ??= crypto.createHash('sha256').update(signingJwk.x + signingJwk.y).digest('base64url').slice(0, 16);

const mtls = Boolean(env.CLIENT_CA);

const clients = [{
  client_id: secretClientId,
  client_secret: secretClientSecret,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
  scope,
}];
if (mtls) {
  clients.push({
    client_id: mtlsClientId,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'tls_client_auth',
    tls_client_auth_subject_dn: mtlsSubjectDn,
    tls_client_certificate_bound_access_tokens: true,
    scope,
  });
}

// "CN=a, O=b" and node's "O=b\nCN=a" style: compare as sets of TYPE=value.
function dnParts(dn) {
  return dn.split(/[\n,]/).map((p) => p.trim()).filter(Boolean)
    .map((p) => { const i = p.indexOf('='); return `${p.slice(0, i).trim().toUpperCase()}=${p.slice(i + 1).trim()}`; })
    .sort().join(',');
}

function makeProvider(boundPort) {
  const provider = new Provider(`https://${host === '0.0.0.0' ? '127.0.0.1' : host}:${boundPort}`, {
    clients,
    jwks: { keys: [signingJwk] },
    scopes: [scope],
    // same path as certbound's token endpoint
    routes: { token: '/oauth/token' },
    clientAuthMethods: mtls ? ['client_secret_basic', 'tls_client_auth'] : ['client_secret_basic'],
    ttl: {
      ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? 3600,
    },
    clientDefaults: {
      id_token_signed_response_alg: 'ES256',
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo(ctx, indicator) {
          if (indicator !== resource) {
            throw new Provider.errors.InvalidTarget();
          }
          return {
            scope,
            audience: resource,
            accessTokenTTL: 3600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
      mTLS: {
        enabled: mtls,
        certificateBoundAccessTokens: mtls,
        tlsClientAuth: mtls,
        getCertificate(ctx) {
          const socket = ctx.socket;
          if (typeof socket.getPeerX509Certificate !== 'function') return undefined;
          return socket.getPeerX509Certificate();
        },
        certificateAuthorized(ctx) {
          return ctx.socket.authorized === true;
        },
        certificateSubjectMatches(ctx, property, expected) {
          const cert = ctx.socket.getPeerX509Certificate();
          switch (property) {
            case 'tls_client_auth_subject_dn':
              return dnParts(cert.subject) === dnParts(expected);
            default:
              throw new Error(`${property} certificate subject matching not implemented`);
          }
        },
      },
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  return provider;
}

const resumption = env.TLS_RESUMPTION === '1';
const server = https.createServer({
  ...tls,
  minVersion: 'TLSv1.3',
  // No tickets: with SSL_OP_NO_TICKET, OpenSSL's TLS 1.3 tickets name a session of the
  // server's cache, which node leaves empty (no 'resumeSession' listener): every
  // connection is a full handshake, as at certbound.
  ...(resumption ? {} : { secureOptions: crypto.constants.SSL_OP_NO_TICKET }),
  ...(mtls ? { requestCert: true, rejectUnauthorized: false, ca: fs.readFileSync(env.CLIENT_CA) } : {}),
  keepAlive: true,
  keepAliveTimeout: keepAliveSecs * 1000,
});
server.keepAliveTimeout = keepAliveSecs * 1000;
server.headersTimeout = (keepAliveSecs + 1) * 1000;
server.requestTimeout = 10_000;

const tlsStats = { connections: 0, resumed: 0 };
server.on('secureConnection', (socket) => {
  tlsStats.connections += 1;
  if (socket.isSessionReused()) tlsStats.resumed += 1;
});

// The issuer names the bound port, so the provider is made once the port is known.
server.listen(port, host, () => {
  const { port: bound } = server.address();
  const handle = makeProvider(bound).callback();
  server.on('request', (req, res) => {
    if (req.method === 'GET' && req.url === '/_bench/tls') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(tlsStats));
      return;
    }
    handle(req, res);
  });
  console.log(`listening https://${host}:${bound}`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { server.close(); server.closeAllConnections?.(); process.exit(0); });
}
