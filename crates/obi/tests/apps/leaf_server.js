// Backend of the fan-out tests: answers any GET after a random 5-30 ms, so
// calls made by concurrent requests overlap.
// Usage: node leaf_server.js PORT   (prints "ready PORT")
'use strict';
const http = require('http');

const port = Number(process.argv[2]);
http
  .createServer((req, res) => {
    setTimeout(() => res.end(`leaf ${req.url}\n`), 5 + Math.floor(Math.random() * 25));
  })
  .listen(port, '127.0.0.1', () => console.log(`ready ${port}`));
