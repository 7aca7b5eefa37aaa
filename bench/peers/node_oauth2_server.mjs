// @node-oauth/oauth2-server as a client-credentials server, for bench/run.sh --peers.
// One client (bench / bench-secret), opaque tokens kept in memory; no crypto at all, which
// is what makes it the fastest of the node peers.
// Routes: POST /token, GET /health.
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import OAuth2Server from '@node-oauth/oauth2-server';

const { Request, Response } = OAuth2Server;
const port = Number(process.argv[2] || 8092);
const tokens = new Map();
const client = { id: 'bench', grants: ['client_credentials'] };

const oauth = new OAuth2Server({
  accessTokenLifetime: 3600,
  model: {
    getClient: async (id, secret) => (id === 'bench' && secret === 'bench-secret' ? client : null),
    getUserFromClient: async () => ({ id: 'service' }),
    generateAccessToken: async () => randomBytes(32).toString('hex'),
    validateScope: async (user, c, scope) => scope ?? ['accounts:read', 'transactions:read'],
    saveToken: async (token, c, user) => {
      const saved = { ...token, client: c, user };
      tokens.set(token.accessToken, saved);
      if (tokens.size > 100000) tokens.delete(tokens.keys().next().value);
      return saved;
    },
  },
});

function readBody(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (chunk) => { data += chunk; });
    req.on('end', () => resolve(Object.fromEntries(new URLSearchParams(data))));
  });
}

http.createServer(async (req, res) => {
  if (req.url === '/health') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"status":"ok"}');
    return;
  }
  const body = await readBody(req);
  const request = new Request({ method: req.method, query: {}, headers: req.headers, body });
  const response = new Response({});
  try {
    await oauth.token(request, response);
  } catch (error) {
    response.status = error.code || 500;
    response.body = { error: error.name, error_description: error.message };
  }
  res.writeHead(response.status, { 'content-type': 'application/json', ...response.headers });
  res.end(JSON.stringify(response.body));
}).listen(port, '127.0.0.1', () => console.error(`oauth2-server listening on 127.0.0.1:${port}`));
