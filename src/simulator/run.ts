/**
 * The simulator as a long-running local server, for `cloudcard-sync simulate` and manual trials.
 */
import { startSimulator } from './server.js';
import type { Simulator, SimulatorOptions } from './types.js';

/**
 * Starts the simulator, prints one line with its base URL and access token (a fake, local token, so printing
 * it is fine and saves the user a lookup), and closes it on SIGINT or SIGTERM.
 */
export async function runSimulatorServer(opts: SimulatorOptions & { port: number }): Promise<Simulator> {
  const sim = await startSimulator(opts);
  process.stdout.write(
    `CloudCard simulator listening: baseUrl=${sim.baseUrl} accessToken=${sim.accessToken} photos=${sim.photos().length} bytesBaseUrl=${sim.bytesBaseUrl}\n`,
  );
  if (sim.queue) {
    process.stdout.write(`Status queue: CLOUDCARD_SYNC_QUEUE_URL=${sim.queue.url} AWS_ENDPOINT_URL_SQS=${sim.queue.endpoint}\n`);
  }
  const stop = () => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    void sim.close();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const close = sim.close;
  // Closing by hand also drops the signal handlers, so they do not keep a dead server's process alive.
  sim.close = async () => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await close();
  };
  return sim;
}
