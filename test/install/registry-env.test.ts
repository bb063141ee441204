// The package tests play an administrator's shell: it must reach the registry the way this host
// does (CA, proxy, npm settings) and carry nothing of the npm that runs the tests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { registryEnv } from '../helpers/registry-env.ts';

test('CA bundles, both spellings of the proxy variables and npm settings pass; npm-run bookkeeping does not', () => {
  const passed = registryEnv({
    NODE_EXTRA_CA_CERTS: '/ca.pem',
    SSL_CERT_FILE: '/ca.pem',
    HTTPS_PROXY: 'http://proxy:3128',
    no_proxy: 'localhost',
    npm_config_cafile: '/ca.pem',
    npm_config_registry: 'https://registry.example/',
    NPM_CONFIG_STRICT_SSL: 'true',
    npm_config_prefix: '/usr',
    npm_config_local_prefix: '/checkout',
    npm_config_user_agent: 'npm/11',
    USER: 'root',
    LOGNAME: 'root',
    QMAILHOME: '/var/qmail',
  });
  assert.deepEqual(Object.keys(passed).sort(), [
    'HTTPS_PROXY', 'NODE_EXTRA_CA_CERTS', 'NPM_CONFIG_STRICT_SSL', 'SSL_CERT_FILE', 'no_proxy', 'npm_config_cafile', 'npm_config_registry',
  ]);
});

test('a bare host passes nothing', () => {
  assert.deepEqual(registryEnv({ PATH: '/usr/bin', HOME: '/root' }), {});
});
