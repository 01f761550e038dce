/** `cloudcard-sync simulate`: the local CloudCard simulator as a server, for trying the job against it by hand. */
import type { Command } from 'commander';
import { ConfigError } from '../errors.js';
import { runSimulatorServer } from '../simulator/index.js';

export function registerSimulate(program: Command): void {
  program
    .command('simulate')
    .description('serve a local CloudCard simulator (API + image storage) until Ctrl-C')
    .option('-p, --port <n>', 'port on 127.0.0.1', '8787')
    .option('--photos <n>', 'photos seeded READY_FOR_DOWNLOAD', '40')
    .option('--image-bytes <n>', 'approximate size of each image', '40000')
    .option('--latency <ms>', 'added to every request', '0')
    .option('--unmatched-every <n>', 'every Nth person matches no student', '9')
    .option('--queue <type>', 'also serve an SQS status queue for READY_FOR_DOWNLOAD photos, with FULL or ID messages (try `consume` against it)')
    .action(async (flags: { port: string; photos: string; imageBytes: string; latency: string; unmatchedEvery: string; queue?: string }) => {
      const queueType = flags.queue?.toUpperCase();
      if (queueType !== undefined && queueType !== 'FULL' && queueType !== 'ID') throw new ConfigError(`--queue must be FULL or ID, got "${flags.queue}"`);
      await runSimulatorServer({
        port: Number(flags.port),
        photoCount: Number(flags.photos),
        imageBytes: Number(flags.imageBytes),
        latencyMs: Number(flags.latency),
        unmatchedEvery: Number(flags.unmatchedEvery),
        ...(queueType ? { statusQueue: { status: 'READY_FOR_DOWNLOAD', messageType: queueType } } : {}),
      });
    });
}
