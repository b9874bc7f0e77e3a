// validate.js FILE.sarif — exits 0 when FILE is a valid SARIF 2.1.0 log, else prints the
// schema errors and exits 1. The schema is OASIS's 2.1.0 (rtm.5), as @microsoft/jest-sarif
// ships it.
const fs = require('fs');
const path = require('path');
const Ajv = require('ajv');
const schemaFile = path.join(path.dirname(require.resolve('@microsoft/jest-sarif/package.json')), 'lib/schemas/sarif-2.1.0-rtm.5.json');
const schema = JSON.parse(fs.readFileSync(schemaFile, 'utf8'));
const ajv = new Ajv({ schemaId: 'auto', allErrors: true });
ajv.addMetaSchema(require('ajv/lib/refs/json-schema-draft-04.json'));
const validate = ajv.compile(schema);
const log = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
if (!validate(log)) {
  console.log(JSON.stringify(validate.errors, null, 2));
  process.exit(1);
}
console.log('valid SARIF 2.1.0');
