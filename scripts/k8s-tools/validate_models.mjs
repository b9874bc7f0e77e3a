// validate_models.mjs FILE.yaml... — the second offline schema check of rendered manifests:
// every document is constructed as its kubernetes-models class (ajv validators generated from
// the Kubernetes OpenAPI and the cert-manager / Prometheus Operator CRD schemas) and validated:
// required fields, types and enums. A cert-manager or monitoring.coreos.com object whose
// group/version has no model is an error (a typo in apiVersion must not pass silently).
// Prints one line per document; exits 1 when any fails.
import fs from 'node:fs';
import * as yaml from 'js-yaml';

const CRD_MODULES = {
  'cert-manager.io': '@kubernetes-models/cert-manager',
  'acme.cert-manager.io': '@kubernetes-models/cert-manager',
  'monitoring.coreos.com': '@kubernetes-models/prometheus-operator',
};

function moduleFor(apiVersion) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const base = CRD_MODULES[group];
  if (base) return { crd: true, path: `${base}/${group}/${version}` };
  return { crd: false, path: `kubernetes-models/${group ? group + '/' : ''}${version}` };
}

async function modelClass(path, kind) {
  try {
    return (await import(path))[kind];
  } catch {
    return undefined;
  }
}

let failed = 0;
for (const file of process.argv.slice(2)) {
  const docs = yaml.loadAll(fs.readFileSync(file, 'utf8')).filter((d) => d && typeof d === 'object');
  for (const doc of docs) {
    const id = `${file}: ${doc.kind}/${doc.metadata?.name} (${doc.apiVersion})`;
    const { crd, path } = moduleFor(String(doc.apiVersion));
    const Model = await modelClass(path, doc.kind);
    if (!Model) {
      if (crd) {
        failed++;
        console.log(`ERROR ${id}: no model for this custom resource version`);
      }
      continue;
    }
    try {
      new Model(doc).validate();
      console.log(`ok    ${id}`);
    } catch (e) {
      failed++;
      console.log(`ERROR ${id}: ${String(e.message).split('\n').slice(0, 8).join(' | ')}`);
    }
  }
}
process.exit(failed ? 1 : 0);
