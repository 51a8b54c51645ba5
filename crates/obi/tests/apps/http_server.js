// Test HTTP/1.1 server for Node.js with the same routes as http_server.py
// (/, /status/<code>, /chunked/<n>, /big/<bytes>, /echo, /slow/<ms>, /headers, /call?url=U),
// plus /busy/<ms>: keeps the event loop busy that long (requests behind it wait
// in their sockets) and says when its handler started in X-Handler-Start
// (wall clock ns).
// Usage: node http_server.js PORT [--tls CERT KEY]   (prints "ready PORT" when listening)
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');

const port = Number(process.argv[2]);

function reply(res, code, body, type = 'text/plain') {
  res.writeHead(code, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

const tls = process.argv[3] === '--tls';
const handler = (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  const parts = url.pathname.replace(/^\/+/, '').split('/');
  if (req.method === 'POST') {
    let n = 0;
    req.on('data', (c) => { n += c.length; });
    req.on('end', () => reply(res, 200, `${n}\n`));
    return;
  }
  switch (parts[0]) {
    case '':
      return reply(res, 200, 'hello\n');
    case 'status':
      return reply(res, Number(parts[1]), `status ${parts[1]}\n`);
    case 'chunked': {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      for (let i = 0; i < Number(parts[1]); i++) res.write(`chunk-${i}\n`);
      return res.end();
    }
    case 'big':
      return reply(res, 200, 'x'.repeat(Number(parts[1])));
    case 'busy': {
      const started = Math.round((performance.timeOrigin + performance.now()) * 1e6);
      const until = Date.now() + Number(parts[1]);
      while (Date.now() < until) { /* the loop is blocked, as in a CPU-bound handler */ }
      res.setHeader('X-Handler-Start', String(started));
      return reply(res, 200, 'busy\n');
    }
    case 'slow':
      return setTimeout(() => reply(res, 200, 'slow\n'), Number(parts[1]));
    case 'headers': {
      const pairs = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) pairs.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
      return reply(res, 200, JSON.stringify(pairs), 'application/json');
    }
    case 'call': {
      const target = new URL(url.searchParams.get('url'));
      const agent = new http.Agent({ keepAlive: false });
      http.get(target, { agent }, (r) => {
        let n = 0;
        r.on('data', (c) => { n += c.length; });
        r.on('end', () => reply(res, 200, `called ${r.statusCode} ${n}\n`));
      }).on('error', (e) => reply(res, 502, `error ${e.message}\n`));
      return;
    }
    default:
      return reply(res, 404, 'not found\n');
  }
};
const server = tls
  ? https.createServer({ cert: fs.readFileSync(process.argv[4]), key: fs.readFileSync(process.argv[5]) }, handler)
  : http.createServer(handler);
server.keepAliveTimeout = 30000;
server.listen(port, '127.0.0.1', () => console.log(`ready ${port}`));
