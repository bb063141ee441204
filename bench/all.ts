// `npm run bench`: the delivery bench (run.ts), then qmail-dkverify's (dkverify.ts), each given
// this command's arguments. npm appends `npm run bench -- ARGS` to the script's last command
// only, so the script runs this one file, which passes them to both.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

for (const file of ['run.ts', 'dkverify.ts']) {
  const run = spawnSync(process.execPath, [fileURLToPath(new URL(file, import.meta.url)), ...process.argv.slice(2)], { stdio: 'inherit' });
  if (run.status !== 0) process.exit(run.status ?? 1);
}
