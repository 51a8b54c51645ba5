// HTTP/2 cleartext (h2c, prior knowledge) test server on Node's http2 module.
//   /              200 "hello"
//   /status/<code> that status
//   /big/<bytes>   200, body of that many bytes
// Usage: node http2_server.js PORT   (prints "ready PORT" when listening)
"use strict";
const http2 = require("http2");

const port = Number(process.argv[2]);
const server = http2.createServer();
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
