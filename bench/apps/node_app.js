// Benchmark app: Node.js http server; GET / returns a 1 KiB body.
// Run plain, under the obi agent, and with
// `node --require @opentelemetry/auto-instrumentations-node/register`.
// Usage: node node_app.js PORT   (prints "ready PORT" once listening)
'use strict';
const http = require('http');

const port = Number(process.argv[2]);
const body = Buffer.from('x'.repeat(1023) + '\n');

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 65000;
server.listen(port, '127.0.0.1', () => console.log(`ready ${port}`));
