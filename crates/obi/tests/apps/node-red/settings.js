// Node-RED settings for the Node.js parent tests: no editor, no credential
// key. Port, user directory and flow file come from the command line.
module.exports = {
  credentialSecret: false,
  httpAdminRoot: false,
  logging: { console: { level: 'info', metrics: false, audit: false } },
  editorTheme: { tours: false },
};
