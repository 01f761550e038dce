/**
 * The simulator in its own process, so that the measured child (job or limit) owns its event loop and its
 * RSS is its own. Started by bench.ts with fork(); reports where it listens over IPC and stops when the
 * parent disconnects or sends 'stop'.
 *
 * Arguments: a JSON object { photos, imageBytes, latencyMs }.
 */
import { startSimulator } from '../src/simulator/index.js';

interface SimArgs {
  photos: number;
  imageBytes: number;
  latencyMs: number;
}

const args = JSON.parse(process.argv[2] ?? '{}') as SimArgs;
// unmatchedEvery 0: every photo belongs to a student, so the job's work per photo is the same for all.
const sim = await startSimulator({ photoCount: args.photos, imageBytes: args.imageBytes, latencyMs: args.latencyMs, seed: 1, unmatchedEvery: 0 });
const stop = () => void sim.close().then(() => process.exit(0));
process.on('disconnect', stop);
process.on('message', (m) => {
  if (m === 'stop') stop();
});
process.send?.({ baseUrl: sim.baseUrl, accessToken: sim.accessToken });
