// The official MCP TypeScript SDK as a client of examples/mcp_server.rs.
//
// Starts with no token, as a real client does: the first request gets a
// 401 whose challenge names the protected resource metadata; the SDK
// reads it, then the authorization server's metadata, obtains a token for
// the resource (RFC 8707) and retries. Then it lists the tools and calls
// them. Prints one JSON line: the tools, the tool results, the access
// token's claims and every HTTP request the SDK made (method, URL, status).
//
// Two flows (FLOW):
//   client_credentials (default): a machine client with configured
//     credentials (the SDK's ClientCredentialsProvider).
//   authorization_code: an interactive client, as MCP hosts are: the SDK
//     registers itself (RFC 7591), sends the user to the authorization
//     endpoint with PKCE and the resource, and redeems the code. The "user"
//     here visits the authorization URL without a browser and hands the
//     code from the redirect back to the SDK.
//
// Settings (environment):
//   MCP_URL        the server's MCP endpoint (its resource identifier)
//   ISSUER         the authorization server the client trusts
//   CLIENT_ID, CLIENT_SECRET   the client's credentials (client_credentials)
//   SCOPE          the scope it asks for (client_credentials: the SDK's flow
//                  sends its configured scope, not the challenge's)
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

function setting(name) {
  const value = process.env[name];
  if (!value) throw new Error(`missing ${name}`);
  return value;
}

const requests = [];
async function recordingFetch(input, init) {
  const response = await fetch(input, init);
  requests.push({ method: init?.method ?? 'GET', url: String(input), status: response.status });
  return response;
}

function claimsOf(token) {
  const payload = token.split('.')[1];
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
}

function textOf(result) {
  return result.content.filter((part) => part.type === 'text').map((part) => part.text).join('');
}

/// An interactive client's side of the flow, kept in memory.
class InteractiveProvider {
  constructor() {
    this.redirect = 'http://127.0.0.1:53682/callback';
    this.expectedState = crypto.randomUUID();
  }
  get redirectUrl() { return this.redirect; }
  get clientMetadata() {
    return {
      client_name: 'tower-authkit-interop',
      redirect_uris: [this.redirect],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() { return this.expectedState; }
  clientInformation() { return this.client; }
  saveClientInformation(info) { this.client = info; }
  tokens() { return this.savedTokens; }
  saveTokens(tokens) { this.savedTokens = tokens; }
  redirectToAuthorization(url) { this.authorizationUrl = url; }
  saveCodeVerifier(verifier) { this.verifier = verifier; }
  codeVerifier() { return this.verifier; }
}

/// What the user's browser would do: open the authorization URL and land
/// on the redirect URI; returns the code after checking state and iss.
async function approve(provider) {
  const url = provider.authorizationUrl;
  if (!url) throw new Error('the SDK never asked for authorization');
  const response = await recordingFetch(url, { redirect: 'manual' });
  const location = response.headers.get('location');
  if (response.status !== 302 || !location) throw new Error(`authorization gave ${response.status}`);
  const landing = new URL(location);
  if (`${landing.origin}${landing.pathname}` !== provider.redirect) throw new Error(`redirected to ${landing}`);
  const error = landing.searchParams.get('error');
  if (error) throw new Error(`authorization refused: ${error}: ${landing.searchParams.get('error_description')}`);
  if (landing.searchParams.get('state') !== provider.expectedState) throw new Error('state mismatch');
  if (landing.searchParams.get('iss') !== setting('ISSUER')) throw new Error('iss mismatch (RFC 9207)');
  return { code: landing.searchParams.get('code'), authorization: Object.fromEntries(url.searchParams) };
}

const mcpUrl = new URL(setting('MCP_URL'));
const transportFor = (provider) => new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: recordingFetch });
const newClient = () => new Client({ name: 'tower-authkit-interop', version: '1.0.0' });

/// A connected client, after whichever flow FLOW names.
async function connect() {
  if ((process.env.FLOW ?? 'client_credentials') === 'client_credentials') {
    const provider = new ClientCredentialsProvider({
      clientId: setting('CLIENT_ID'),
      clientSecret: setting('CLIENT_SECRET'),
      expectedIssuer: setting('ISSUER'),
      scope: setting('SCOPE'),
    });
    const client = newClient();
    await client.connect(transportFor(provider));
    return { client, provider, extra: {} };
  }
  const provider = new InteractiveProvider();
  const first = transportFor(provider);
  try {
    await newClient().connect(first);
    throw new Error('connected without authorization');
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
  }
  const { code, authorization } = await approve(provider);
  await first.finishAuth(code);
  const client = newClient();
  await client.connect(transportFor(provider));
  return { client, provider, extra: { authorization, registered_client_id: provider.client.client_id } };
}

try {
  const { client, provider, extra } = await connect();
  const tools = await client.listTools();
  const whoami = await client.callTool({ name: 'whoami', arguments: {} });
  const add = await client.callTool({ name: 'add', arguments: { a: 2, b: 40 } });
  const tokens = provider.tokens();
  console.log(JSON.stringify({
    tools: tools.tools.map((tool) => tool.name).sort(),
    whoami: JSON.parse(textOf(whoami)),
    add: textOf(add),
    claims: claimsOf(tokens.access_token),
    requests,
    ...extra,
  }));
  await client.close();
} catch (error) {
  console.error(`mcp client failed: ${error?.stack ?? error}`);
  console.error(JSON.stringify({ requests }));
  process.exit(1);
}
