// Reads a JSON array of LogQL queries on stdin and prints a JSON array of booleans: whether
// Grafana's lezer grammar parses each without an error node. Used by tests/tests/logql.rs.
const { parser } = require('@grafana/lezer-logql');
const queries = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const verdicts = queries.map((q) => {
  let ok = true;
  parser.parse(q).iterate({ enter: (n) => { if (n.type.isError) ok = false; } });
  return ok;
});
process.stdout.write(JSON.stringify(verdicts));
