// The bench's SMTP sink in a process of its own (bench/sink.ts says why): `node
// bench/sink-serve.ts HOST`, started by startSink() with an IPC channel. It sends its port once
// listening, then answers each 'counts' message with the counts so far.
import { serveSink, type SinkCounts } from './sink.ts';

const sink = await serveSink(process.argv[2]);
process.on('message', () => {
  const counts: SinkCounts = { messages: sink.messages(), lastHead: sink.lastHead().toString('latin1') };
  process.send?.(counts);
});
process.on('disconnect', () => void sink.close().then(() => process.exit(0)));
process.send?.({ port: sink.port });
