// HTTP/2 cleartext (h2c, prior knowledge) test server on Node's http2 module.
//   /              200 "hello"
//   /status/<code> that status
//   /big/<bytes>   200, body of that many bytes
// Usage: node http2_server.js PORT [--tls CERT KEY]   (prints "ready PORT" when listening)
// With --tls: HTTP/2 over TLS (ALPN h2), as browsers and curl --http2 speak it.
"use strict";
const http2 = require("http2");

const fs = require("fs");

const port = Number(process.argv[2]);
const tls = process.argv[3] === "--tls";
const server = tls
  ? http2.createSecureServer({ cert: fs.readFileSync(process.argv[4]), key: fs.readFileSync(process.argv[5]) })
  : http2.createServer();
server.on("stream", (stream, headers) => {
  const parts = (headers[":path"] || "/").split("?")[0].split("/").filter(Boolean);
  if (parts[0] === "status") {
    stream.respond({ ":status": Number(parts[1]), "content-type": "text/plain" });
    stream.end(`status ${parts[1]}\n`);
  } else if (parts[0] === "big") {
    stream.respond({ ":status": 200, "content-type": "application/octet-stream" });
    stream.end(Buffer.alloc(Number(parts[1]), 120));
  } else {
    stream.respond({ ":status": 200, "content-type": "text/plain" });
    stream.end("hello\n");
  }
});
server.listen(port, "127.0.0.1", () => console.log(`ready ${port}`));
