// What a process needs from this host's environment to reach the npm registry, and nothing else:
// the CA bundles Node and OpenSSL read, the proxy settings (npm and Node read both spellings),
// and the npm settings an administrator exports (npm_config_*). A host behind a TLS-inspecting
// proxy has all its registry access in these; a bare host has none of them and loses nothing.
//
// Left out: what `npm run`/`npm test` itself exports to the scripts it runs about the project
// in which it runs them (its prefixes, its version, its log level). Those describe the npm
// running these tests, not the administrator whose shell a test plays.
const PASSED = new Set([
  'NODE_EXTRA_CA_CERTS',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'HTTPS_PROXY',
  'https_proxy',
  'HTTP_PROXY',
  'http_proxy',
  'NO_PROXY',
  'no_proxy',
]);
const NPM_RUN_OWN = new Set([
  'npm_config_prefix',
  'npm_config_global_prefix',
  'npm_config_local_prefix',
  'npm_config_user_agent',
  'npm_config_npm_version',
  'npm_config_node_gyp',
  'npm_config_loglevel',
]);

export function registryEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const passed: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) continue;
    const npmSetting = /^npm_config_/i.test(name) && !NPM_RUN_OWN.has(name.toLowerCase());
    if (PASSED.has(name) || npmSetting) passed[name] = value;
  }
  return passed;
}
