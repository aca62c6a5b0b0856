// The official MCP TypeScript SDK as a client of examples/mcp_server.rs.
//
// Starts with no token, as a real client does: the first request gets a
// 401 whose challenge names the protected resource metadata; the SDK
// reads it, then the authorization server's metadata, obtains a token for
// the resource (RFC 8707) and retries. Then it lists the tools and calls
// them. Prints one JSON line: the tools, the tool results, the access
// token's claims and every HTTP request the SDK made (method, URL, status).
//
// Settings (environment):
//   MCP_URL        the server's MCP endpoint (its resource identifier)
//   ISSUER         the authorization server the client trusts
//   CLIENT_ID, CLIENT_SECRET   the client's credentials (client_credentials grant)
//   SCOPE          the scope it asks for (the SDK's client-credentials flow
//                  sends its configured scope, not the challenge's)
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';

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

const provider = new ClientCredentialsProvider({
  clientId: setting('CLIENT_ID'),
  clientSecret: setting('CLIENT_SECRET'),
  expectedIssuer: setting('ISSUER'),
  scope: setting('SCOPE'),
});
const transport = new StreamableHTTPClientTransport(new URL(setting('MCP_URL')), {
  authProvider: provider,
  fetch: recordingFetch,
});
const client = new Client({ name: 'tower-authkit-interop', version: '1.0.0' });

try {
  await client.connect(transport);
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
  }));
  await client.close();
} catch (error) {
  console.error(`mcp client failed: ${error?.stack ?? error}`);
  console.error(JSON.stringify({ requests }));
  process.exit(1);
}
