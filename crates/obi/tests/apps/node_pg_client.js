// node-postgres (pg) traffic for the PostgreSQL test: simple queries,
// parameterised ones (unnamed extended protocol), a named prepared
// statement run three times, a transaction, an error, and a pool running
// eight queries at once.
//
// Usage: node node_pg_client.js PORT PASSWORD
// Prints one line per step the test checks, then "ok".
'use strict';
const path = require('path');
const pg = require(path.join(process.env.OBI_TEST_NODE || '/opt/obi-node', 'apps', 'node_modules', 'pg'));

async function main(port, password) {
  // Let the agent instrument this process before its first connection.
  await new Promise((r) => setTimeout(r, 500));
  const cfg = { host: '127.0.0.1', port, user: 'obi', password, database: 'postgres' };
  const client = new pg.Client(cfg);
  await client.connect();
  await client.query('CREATE TABLE veg (id int PRIMARY KEY, name text)');
  for (let i = 0; i < 3; i++) {
    await client.query('INSERT INTO veg (id, name) VALUES ($1, $2)', [i, `v${i}`]);
  }
  for (let i = 0; i < 3; i++) {
    await client.query({ name: 'rename', text: 'UPDATE veg SET name = $1 WHERE id = $2', values: [`r${i}`, 1] });
  }
  const res = await client.query('SELECT name FROM veg WHERE id = $1', [1]);
  console.log('select', res.rows[0].name);
  await client.query('BEGIN');
  await client.query('DELETE FROM veg WHERE id = $1', [2]);
  await client.query('COMMIT');
  try {
    await client.query('SELECT * FROM nope WHERE id = $1', [1]);
  } catch (e) {
    console.log('error', e.code);
  }
  await client.end();
  const pool = new pg.Pool({ ...cfg, max: 4 });
  const counts = await Promise.all(
    Array.from({ length: 8 }, (_, i) => pool.query('SELECT count(*) AS n FROM veg WHERE id >= $1', [i])),
  );
  console.log('counts', counts.reduce((s, r) => s + Number(r.rows[0].n), 0));
  await pool.end();
  console.log('ok');
}

main(Number(process.argv[2]), process.argv[3]).catch((e) => {
  console.error(e);
  process.exit(1);
});
