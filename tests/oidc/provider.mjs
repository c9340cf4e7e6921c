// A local OpenID provider (the certified `oidc-provider` package) for the tests and the `make run-sso` demo.
//
// Environment:
//   PORT              port on 127.0.0.1 (0 picks a free one; the chosen issuer is printed on stdout)
//   OIDC_USERS_FILE   JSON {"<login>": {"email", "name", "groups": [..]}}; re-read on every lookup, so a test
//                     can move a user out of a group "at the IdP"
//   OIDC_CLIENT_SECRET  secret of the portal's confidential client (default "portal-secret")
//   OIDC_API_AUDIENCE   audience of API access tokens (default "urn:gatewayportal:api")
//   OIDC_CI_AUDIENCE    audience of the pipeline tokens minted by the `ci-*` clients (default "urn:gatewayportal:ci")
//
// Clients:
//   gateway-portal  the portal: authorization code + PKCE, any loopback port (native loopback redirect rules)
//   portal-cli      public client (PKCE) that people use to get API access tokens (JWT, ES256, audience above)
//   ci-payments-main, ci-payments-branch  client-credentials "pipelines" whose JWTs carry
//                   repository/ref claims like a CI system's identity tokens
//
// Two signing keys are published: an RSA key (ID tokens, RS256) and an EC key (access tokens, ES256).
// Logins use the provider's own development login page: any password, a login from OIDC_USERS_FILE.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 0);
const usersFile = process.env.OIDC_USERS_FILE;
const apiAudience = process.env.OIDC_API_AUDIENCE || 'urn:gatewayportal:api';
const ciAudience = process.env.OIDC_CI_AUDIENCE || 'urn:gatewayportal:ci';

const DEFAULT_USERS = {
  alice: { email: 'alice@example.com', name: 'Alice', groups: ['payments-devs'] },
  bob: { email: 'bob@example.com', name: 'Bob', groups: ['platform-engineers'] },
};

const CI_CLAIMS = {
  'ci-payments-main': { repository: 'acme/payments-gateways', ref: 'refs/heads/main' },
  'ci-payments-branch': { repository: 'acme/payments-gateways', ref: 'refs/heads/feature-x' },
};

function users() {
  return usersFile ? JSON.parse(readFileSync(usersFile, 'utf8')) : DEFAULT_USERS;
}

function jwk(type, options, kid, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

const jwks = {
  keys: [
    jwk('rsa', { modulusLength: 2048 }, 'rsa-1', 'RS256'),
    jwk('ec', { namedCurve: 'P-256' }, 'ec-1', 'ES256'),
  ],
};

const resources = {
  [apiAudience]: {
    scope: 'api', audience: apiAudience, accessTokenFormat: 'jwt', accessTokenTTL: 600, jwt: { sign: { alg: 'ES256' } },
  },
  [ciAudience]: {
    scope: 'api', audience: ciAudience, accessTokenFormat: 'jwt', accessTokenTTL: 600, jwt: { sign: { alg: 'RS256' } },
  },
};

const configuration = {
  clients: [
    {
      client_id: 'gateway-portal',
      client_secret: process.env.OIDC_CLIENT_SECRET || 'portal-secret',
      application_type: 'native',
      redirect_uris: ['http://127.0.0.1/oidc/callback/', 'http://localhost/oidc/callback/'],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    },
    {
      client_id: 'portal-cli',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      redirect_uris: ['http://127.0.0.1/callback'],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    },
    ...Object.keys(CI_CLAIMS).map((clientId) => ({
      client_id: clientId,
      client_secret: `${clientId}-secret`,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    })),
  ],
  jwks,
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups', 'api'],
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => {
        if (!resources[indicator]) throw new Provider.errors.InvalidTarget();
        return resources[indicator];
      },
    },
  },
  async findAccount(ctx, sub) {
    const user = users()[sub];
    if (!user) return undefined;
    return {
      accountId: sub,
      async claims() {
        const current = users()[sub] || {};
        return {
          sub,
          email: current.email,
          email_verified: true,
          name: current.name,
          preferred_username: sub,
          groups: current.groups || [],
        };
      },
    };
  },
  // Access tokens carry what a resource server needs: the person's groups, or the pipeline's identity claims.
  async extraTokenClaims(ctx, token) {
    if (token.accountId) {
      const user = users()[token.accountId];
      return { groups: user?.groups || [], email: user?.email };
    }
    return CI_CLAIMS[token.clientId];
  },
  ttl: { AccessToken: 600, ClientCredentials: 600, IdToken: 600, AuthorizationCode: 60 },
  cookies: { keys: ['gateway-portal-test-idp'] },
};

const server = (await import('node:http')).createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration);
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  server.on('request', provider.callback());
  console.log(`issuer ${issuer}`);
});
