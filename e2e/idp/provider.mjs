// node_modules/oidc-provider (certified by the OpenID Foundation) on loopback, as the
// organization's identity provider in e2e/test_sso.py. Its development sign-in form takes
// any password for the accounts in IDP_ACCOUNTS (JSON: login -> claims), then asks consent.
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.env.IDP_PORT);
const accounts = JSON.parse(process.env.IDP_ACCOUNTS);
// `localhost`, not wharf's 127.0.0.1: another site, as a real provider is (cookies, redirects).
const issuer = `http://localhost:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.IDP_CLIENT_ID,
    client_secret: process.env.IDP_CLIENT_SECRET,
    redirect_uris: process.env.IDP_REDIRECT_URIS.split(" "),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  async findAccount(ctx, id) {
    const claims = accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...claims }; } };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  // The claims of the scopes in the ID token itself (wharf reads no userinfo).
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  cookies: { keys: ['e2e-only-cookie-key'] },
  features: { devInteractions: { enabled: true } },
});
// On both loopback addresses `localhost` may resolve to, and nowhere else.
const handler = provider.callback();
createServer(handler).listen(port, '127.0.0.1', () => console.log(`listening on ${issuer}`));
createServer(handler).listen(port, '::1').on('error', (e) => console.log(`no ::1: ${e.code}`));
