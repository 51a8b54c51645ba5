// MQTT test client on mqtt.js (the npm package, installed by
// scripts/install-deps.sh under $OBI_TEST_NODE/apps, default /opt/obi-node/apps).
//
//   node mqtt_client.js pub PORT --id ID --topic T --qos Q [--count N] [--v5]
//   node mqtt_client.js sub PORT --id ID --topic FILTER --qos Q [--count N]   prints "ready" once subscribed
'use strict';
const path = require('path');
const mqtt = require(path.join(process.env.OBI_TEST_NODE || '/opt/obi-node', 'apps', 'node_modules', 'mqtt'));

const [mode, port, ...rest] = process.argv.slice(2);
const opt = { id: '', topic: 't', qos: '0', count: '1' };
for (let i = 0; i < rest.length; i++) {
  const k = rest[i].replace(/^--/, '');
  if (k === 'v5') opt.v5 = true;
  else opt[k] = rest[++i];
}
const count = Number(opt.count);
const qos = Number(opt.qos);

// Let the agent instrument this process before it connects.
setTimeout(() => {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
    clientId: opt.id,
    protocolVersion: opt.v5 ? 5 : 4,
    reconnectPeriod: 0,
  });
  client.on('error', (e) => {
    console.error(e);
    process.exit(1);
  });
  client.on('connect', async () => {
    if (mode === 'pub') {
      for (let i = 0; i < count; i++) await client.publishAsync(opt.topic, `m${i}`, { qos });
      console.log(`published ${count}`);
      await client.endAsync();
    } else {
      let got = 0;
      client.on('message', (topic, payload) => {
        console.log(`got ${topic} ${payload.length}`);
        // Ending inside the callback would cut the QoS 2 handshake short.
        if (++got >= count) setTimeout(() => client.end(() => console.log(`received ${got}`)), 300);
      });
      await client.subscribeAsync(opt.topic, { qos });
      console.log('ready');
    }
  });
}, 800);
