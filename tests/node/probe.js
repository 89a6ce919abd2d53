// What a Node.js app or BI backend does with node-postgres: connect with a URL, run one
// query, read the fields' names and the rows. Prints one JSON object.
// node probe.js URL SQL
const { Client } = require("pg");

async function main() {
  const [url, sql] = process.argv.slice(2);
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const r = await client.query(sql);
    console.log(JSON.stringify({ fields: r.fields.map((f) => f.name), rows: r.rows }));
  } finally {
    await client.end();
  }
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
