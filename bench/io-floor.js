// The I/O floor of `npm run bench`: the least any signer-and-sender must do with a message —
// read the file, hash it with SHA-256 (DKIM) and SHA-1 (DomainKeys), and write it to the SMTP
// sink in a minimal dialogue. No canonicalization, no CRLF, no dot-stuffing, no signature.
// One 1 MiB buffer is read into again and again (each write is waited for first), so memory
// stays flat whatever the size of the message: a floor for peak RSS as well as for time.
// Plain JavaScript, not TypeScript, so that it does not pay for type stripping at start-up.
//   node io-floor.js PORT FILE
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { connect } from 'node:net';
import { once } from 'node:events';

const [port, file] = process.argv.slice(2);
const socket = connect(Number(port), '127.0.0.1');
socket.setNoDelay(true);
let replies = '';
socket.on('data', (chunk) => (replies += chunk.toString('latin1')));
// Waits for one complete reply line with the expected code.
async function reply(code) {
  while (!/\r\n/.test(replies)) await once(socket, 'data');
  const line = replies.slice(0, replies.indexOf('\r\n'));
  replies = replies.slice(line.length + 2);
  if (!line.startsWith(code)) throw new Error(`sink said ${line}`);
}
const say = async (command, code) => (socket.write(command), reply(code));
const write = (data) => new Promise((resolve, reject) => socket.write(data, (error) => (error ? reject(error) : resolve())));

await reply('220');
await say('EHLO floor\r\n', '250');
await say('MAIL FROM:<a@example.com>\r\n', '250');
await say('RCPT TO:<b@example.net>\r\n', '250');
await say('DATA\r\n', '354');
const sha256 = createHash('sha256');
const sha1 = createHash('sha1');
const handle = await open(file);
const buffer = Buffer.allocUnsafe(1 << 20);
for (let n; (n = (await handle.read(buffer, 0, buffer.length)).bytesRead) > 0; ) {
  const chunk = buffer.subarray(0, n);
  sha256.update(chunk);
  sha1.update(chunk);
  await write(chunk);
}
await handle.close();
sha256.digest();
sha1.digest();
await say('\r\n.\r\n', '250');
await say('QUIT\r\n', '221');
socket.end();
