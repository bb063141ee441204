// The manual pages package.json ships (`man`): each renders with groff and man without a
// warning, has the sections a qmail page has, and names every option its command takes, so
// that a new option without documentation fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { man: string[] };
const ENV = { PATH: process.env.PATH ?? '', LC_ALL: 'C.UTF-8', MANWIDTH: '80' };

test('package.json lists every page under docs/man, and only those', () => {
  const pages = readdirSync(`${ROOT}docs/man`).filter((name) => /\.\d$/.test(name)).map((name) => `docs/man/${name}`);
  assert.deepEqual([...pkg.man].sort(), pages.sort());
});

for (const page of pkg.man) {
  test(`${page} renders without warnings and has NAME, SYNOPSIS, DESCRIPTION, EXIT STATUS, SEE ALSO`, () => {
    const groff = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', `${ROOT}${page}`], { env: ENV, encoding: 'utf8' });
    assert.ifError(groff.error ? new Error(`groff: ${groff.error.message} (apt-get install groff-base)`) : null);
    assert.equal(groff.stderr, '');
    assert.equal(groff.status, 0);
    const man = spawnSync('man', ['--warnings', '-l', `${ROOT}${page}`], { env: ENV, encoding: 'utf8' });
    assert.ifError(man.error ? new Error(`man: ${man.error.message} (apt-get install man-db)`) : null);
    assert.equal(man.stderr, '');
    assert.equal(man.status, 0);
    for (const section of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'EXIT STATUS', 'SEE ALSO']) assert.match(man.stdout, new RegExp(`^${section}$`, 'm'));
    assert.match(man.stdout, /qmail-remote\(8\)/);
  });
}

/** The long options a command's --help lists, without yargs' own. */
function options(bin: string, args: string[]): string[] {
  const help = spawnSync(process.execPath, [`${ROOT}bin/${bin}`, ...args, '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0, help.stderr);
  return [...help.stdout.matchAll(/^ {2}(?:-\w, )?(--[\w-]+)/gm)].map((m) => m[1] ?? '').filter((o) => o !== '--help' && o !== '--version');
}

test('qmail-remote-dkim(8) names every command and option', () => {
  const text = readFileSync(`${ROOT}docs/man/qmail-remote-dkim.8`, 'utf8').replace(/\\-/g, '-');
  for (const command of ['install', 'uninstall', 'keys', 'keygen', 'sign', 'demo']) {
    assert.match(text, new RegExp(`^\\.B ${command}\\b`, 'm'), command);
    for (const option of options('qmail-remote-dkim', [command])) assert.ok(text.includes(option), `${command} ${option}`);
  }
});

test('dknewkey(8) names every option', () => {
  const text = readFileSync(`${ROOT}docs/man/dknewkey.8`, 'utf8').replace(/\\-/g, '-');
  for (const option of options('dknewkey', [])) assert.ok(text.includes(option), option);
});
