// A real OpenID Provider (oidc-provider) for tower-authkit's interop tests.
// Prints "listening on http://127.0.0.1:PORT" once it accepts connections.
// PORT (optional) pins the port so a restart keeps the issuer; every start
// generates a new key set, so a restart is a key rotation.
import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

function key(type, options, alg, kid) {
  const { privateKey } = crypto.generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid };
}

const generation = crypto.randomBytes(4).toString('hex');
const keys = [
  key('rsa', { modulusLength: 2048 }, 'RS256', `rs256-${generation}`),
  key('ec', { namedCurve: 'P-256' }, 'ES256', `es256-${generation}`),
  key('ed25519', {}, 'EdDSA', `eddsa-${generation}`),
];

// One resource (audience) per signing algorithm.
const resources = {
  'urn:interop:rs256': 'RS256',
  'urn:interop:es256': 'ES256',
  'urn:interop:eddsa': 'EdDSA',
};

// MCP servers on loopback (examples/mcp_server.rs): the resource is the
// server's URL, and its tokens carry the scope it asks for.
const mcpResource = /^http:\/\/127\.0\.0\.1:[0-9]+\/mcp$/;

function resourceServer(resource) {
  if (mcpResource.test(resource)) {
    return { scope: 'mcp:tools', alg: 'ES256' };
  }
  const alg = resources[resource];
  if (!alg) throw new Error(`unknown resource ${resource}`);
  return { scope: 'api:read', alg };
}

const server = http.createServer();
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'interop',
      client_secret: 'interop-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
    }],
    jwks: { keys },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'urn:interop:rs256',
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          const { scope, alg } = resourceServer(resource);
          return {
            scope,
            audience: resource,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 300,
            jwt: { sign: { alg } },
          };
        },
      },
    },
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256', 'ES256', 'EdDSA'],
    },
  });
  server.on('request', provider.callback());
  console.log(`listening on ${issuer}`);
});
