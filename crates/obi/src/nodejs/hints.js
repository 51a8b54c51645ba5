// Injected by obi-rs into a running Node.js process through its inspector
// (Runtime.evaluate). It tells the kernel side which server request each
// outgoing HTTP request belongs to, which one event-loop thread cannot show:
// just before a client request's first bytes reach its socket it calls
// access("<prefix><client fd><server fd>") through fs.existsSync (8 lowercase
// hex digits each, ffffffff = no parent), which the agent's eBPF access
// tracepoints read.
// The path lies under /dev/null, so the call fails with ENOTDIR and never
// touches a file, with or without the agent.
//
// Evaluated as `(<this function>)(prefix)`; returns "injected" or
// "already injected".
(function (prefix) {
  'use strict';
  const marker = Symbol.for('obi-rs.parent-hints');
  if (globalThis[marker]) return 'already injected';

  const http = require('http');
  const https = require('https');
  const net = require('net');
  const fs = require('fs');
  const { AsyncLocalStorage } = require('async_hooks');

  const requests = new AsyncLocalStorage(); // store: { fd, res } of the server request
  const kStore = Symbol('obi-rs.server-request');
  const kHinted = Symbol('obi-rs.hinted');
  const ROOT = 0xffffffff;

  const hex8 = (n) => (n >>> 0).toString(16).padStart(8, '0');
  const fdOf = (socket) => {
    const h = socket && socket._handle;
    return h && typeof h.fd === 'number' && h.fd >= 0 ? h.fd : -1;
  };
  // existsSync is access(2) without the cost of building an exception for
  // the ENOTDIR it always gets (the kernel side read the path on the way in).
  const hint = (clientFd, serverFd) => fs.existsSync(prefix + hex8(clientFd) + hex8(serverFd));

  // Every server request runs its handlers inside its own store. Patching
  // the prototypes reaches servers created before this script ran.
  for (const Server of [http.Server, https.Server]) {
    const emit = Server.prototype.emit;
    Server.prototype.emit = function (event, req, res) {
      if (event !== 'request' || !req || !res) return emit.apply(this, arguments);
      const args = arguments;
      return requests.run({ fd: fdOf(req.socket), res }, () => emit.apply(this, args));
    };
  }

  // A client request belongs to the server request active when it was
  // created: the agent's addRequest runs inside the ClientRequest
  // constructor, in the caller's context (a socket may be handed over
  // later, in another request's context).
  const addRequest = http.Agent.prototype.addRequest;
  http.Agent.prototype.addRequest = function (req) {
    if (req && !(kStore in req)) req[kStore] = requests.getStore();
    return addRequest.apply(this, arguments);
  };
  const onSocket = http.ClientRequest.prototype.onSocket;
  http.ClientRequest.prototype.onSocket = function () {
    if (!(kStore in this)) this[kStore] = requests.getStore();
    return onSocket.apply(this, arguments);
  };

  // Once per client request, right before its first bytes are written on a
  // connected plaintext socket (TLS plaintext is not traced by socket).
  const writeGeneric = net.Socket.prototype._writeGeneric;
  net.Socket.prototype._writeGeneric = function () {
    const req = this._httpMessage;
    if (req && !req[kHinted] && !this.connecting && !this.encrypted && kStore in req &&
        req instanceof http.ClientRequest) {
      req[kHinted] = true;
      const fd = fdOf(this);
      if (fd >= 0) {
        const store = req[kStore];
        const live = store && store.fd >= 0 && !store.res.writableEnded;
        hint(fd, live ? store.fd : ROOT);
      }
    }
    return writeGeneric.apply(this, arguments);
  };

  Object.defineProperty(globalThis, marker, { value: true });
  return 'injected';
})
