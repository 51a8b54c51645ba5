// Express app for the Node.js parent tests (tests/common/audit.rs):
// GET /fanout/<id>/<n>?base=B makes n concurrent GETs to B/leaf/<id>/<k>
// and answers once all are back, so each outgoing request's path names the
// incoming request that caused it.
// Usage: node fanout_express.js PORT   (prints "ready PORT"; needs express on NODE_PATH)
'use strict';
const http = require('http');
const express = require('express');

const port = Number(process.argv[2]);

const get = (url) =>
  new Promise((resolve, reject) => {
    http
      .get(url, (r) => {
        r.resume();
        r.on('end', () => resolve(r.statusCode));
      })
      .on('error', reject);
  });

const app = express();
app.get('/fanout/:id/:n', async (req, res) => {
  const { id } = req.params;
  const n = Number(req.params.n);
  try {
    const codes = await Promise.all(Array.from({ length: n }, (_, k) => get(`${req.query.base}/leaf/${id}/${k}`)));
    res.send(`fanout ${id} ${codes.join(',')}\n`);
  } catch (e) {
    res.status(502).send(`error ${e.message}\n`);
  }
});
app.listen(port, '127.0.0.1', () => console.log(`ready ${port}`));
