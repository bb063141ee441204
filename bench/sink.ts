// The loopback SMTP server every delivery of the bench goes to. It must never be what is
// measured, so it does no more than a peer has to: 220 on connect, 250 to every command, 354
// to DATA, 250 as soon as the final dot has arrived, 221 to QUIT. It parses no addresses,
// keeps no message and looks for the end of DATA only in the bytes that can hold it. It counts
// messages, so the bench can check that every timed run really delivered.
//
// It runs in a process of its own (bench/sink-serve.ts), never in the bench's: the bench forks
// for every run it times, and after each fork the sink's first write to each page of its heap
// was a copy-on-write fault. In the bench process the sink took 100-190 ms of CPU, 6,000 page
// faults, to take in one 20 MiB message, and the sender waited on it; in a process of its own,
// about 4 ms and none.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

/** The sink as the process that serves it sees it. */
export interface SinkServer {
  readonly port: number;
  /** Messages accepted (final dot answered with 250) so far. */
  messages(): number;
  /** The first bytes of the last message accepted: enough to see its signature fields. */
  lastHead(): Buffer;
  close(): Promise<void>;
}

/** The sink as the bench sees it, from another process. */
export interface Sink {
  readonly port: number;
  /** Messages accepted so far. */
  messages(): Promise<number>;
  /** The first bytes of the last message accepted. */
  lastHead(): Promise<Buffer>;
  close(): Promise<void>;
}

/** What the serving process answers to a 'counts' message. */
export interface SinkCounts {
  readonly messages: number;
  readonly lastHead: string;
}

const END_OF_DATA = Buffer.from('\r\n.\r\n');
const CRLF = Buffer.from('\r\n');
const HEAD_BYTES = 2048;

/** `host`: the loopback address to listen on (another than 127.0.0.1 for an MX, which qmail-remote
 * refuses when it is an address of this host's own). */
export async function serveSink(host = '127.0.0.1'): Promise<SinkServer> {
  let messages = 0;
  let lastHead = Buffer.alloc(0);
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setNoDelay(true);
    socket.write('220 sink ESMTP\r\n');
    let inData = false;
    // In DATA: the last bytes seen, enough to find an end-of-data split across reads. Begins
    // as CRLF because the line after the 354 starts a line.
    let tail: Buffer = CRLF;
    let pending = '';
    let head: Buffer[] = [];
    let headLength = 0;
    const keepHead = (data: Buffer): void => {
      if (headLength >= HEAD_BYTES) return;
      const part = Buffer.from(data.subarray(0, HEAD_BYTES - headLength));
      head.push(part);
      headLength += part.length;
    };

    const command = (line: string): void => {
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'DATA') {
        inData = true;
        tail = CRLF;
        head = [];
        headLength = 0;
        socket.write('354 go ahead\r\n');
      } else if (verb === 'QUIT') {
        socket.end('221 bye\r\n');
      } else {
        socket.write('250 ok\r\n');
      }
    };

    const commands = (text: string): void => {
      pending += text;
      for (let eol = pending.indexOf('\n'); eol !== -1 && !inData; eol = pending.indexOf('\n')) {
        const line = pending.slice(0, eol).replace(/\r$/, '');
        pending = pending.slice(eol + 1);
        command(line);
      }
    };

    socket.on('data', (chunk: Buffer) => {
      if (!inData) {
        commands(chunk.toString('latin1'));
        // A client may pipeline message bytes right behind DATA; they stay in `pending`.
        if (!inData || pending.length === 0) return;
        chunk = Buffer.from(pending, 'latin1');
        pending = '';
      }
      // Only the seam between the previous read and this one, then this read itself.
      const seam = Buffer.concat([tail, chunk.subarray(0, END_OF_DATA.length - 1)]);
      let end = seam.indexOf(END_OF_DATA);
      if (end !== -1) end = end + END_OF_DATA.length - tail.length;
      else {
        end = chunk.indexOf(END_OF_DATA);
        if (end !== -1) end += END_OF_DATA.length;
      }
      if (end === -1) {
        keepHead(chunk);
        tail = Buffer.from(chunk.length >= 4 ? chunk.subarray(chunk.length - 4) : Buffer.concat([tail, chunk]).subarray(-4));
        return;
      }
      keepHead(chunk.subarray(0, end));
      lastHead = Buffer.concat(head);
      inData = false;
      messages += 1;
      socket.write('250 ok: queued\r\n');
      if (end < chunk.length) commands(chunk.subarray(end).toString('latin1'));
    });
  });
  server.maxConnections = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    messages: () => messages,
    lastHead: () => lastHead,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Starts the sink in a process of its own (bench/sink-serve.ts) listening on `host`, and asks
 * it for its counts over IPC, one question at a time.
 */
export async function startSink(host = '127.0.0.1'): Promise<Sink> {
  const script = fileURLToPath(new URL('sink-serve.ts', import.meta.url));
  const child = spawn(process.execPath, [script, host], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const [ready] = (await once(child, 'message')) as [{ port: number }];
  const waiting: Array<(counts: SinkCounts) => void> = [];
  child.on('message', (counts: SinkCounts) => waiting.shift()?.(counts));
  const counts = (): Promise<SinkCounts> =>
    new Promise((resolve) => {
      waiting.push(resolve);
      child.send('counts');
    });
  return {
    port: ready.port,
    messages: async () => (await counts()).messages,
    lastHead: async () => Buffer.from((await counts()).lastHead, 'latin1'),
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill();
      await exited;
    },
  };
}
