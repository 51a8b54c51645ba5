// ioredis traffic for the Redis test: plain commands, an error, a pipeline
// (one write), MULTI/EXEC, and twenty commands issued at once.
//
// Usage: node ioredis_client.js PORT
// Prints one line per step the test checks, then "ok".
'use strict';
const path = require('path');
const Redis = require(path.join(process.env.OBI_TEST_NODE || '/opt/obi-node', 'apps', 'node_modules', 'ioredis'));

async function main(port) {
  // Let the agent instrument this process before its first connection.
  await new Promise((r) => setTimeout(r, 500));
  const redis = new Redis({ host: '127.0.0.1', port, lazyConnect: true, enableReadyCheck: false });
  await redis.connect();
  await redis.set('user:1', 'ada');
  console.log('get', await redis.get('user:1'));
  try {
    await redis.incrby('user:1', 1);
  } catch (e) {
    console.log('error', e.message.split(' ')[0]);
  }
  const pipe = redis.pipeline();
  for (let i = 0; i < 5; i++) pipe.rpush('list', `v${i}`);
  await pipe.exec();
  const [[, a], [, b]] = await redis.multi().incrby('counter', 2).incrby('counter', 3).exec();
  console.log('multi', a, b);
  const got = await Promise.all(Array.from({ length: 20 }, (_, i) => redis.get(`missing:${i}`)));
  console.log('missing', got.filter((v) => v === null).length);
  redis.disconnect();
  console.log('ok');
}

main(Number(process.argv[2])).catch((e) => {
  console.error(e);
  process.exit(1);
});
