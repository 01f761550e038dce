/** The logger: context fields on every line inside a run/photo, nothing leaking between lines, secrets redacted by value. */
import { PassThrough } from 'node:stream';
import { expect, it } from 'vitest';
import { createLogger, registerSecret, withLogContext } from '../src/log.js';

function capture() {
  const stream = new PassThrough();
  const lines: Array<Record<string, unknown>> = [];
  stream.on('data', (d: Buffer) => {
    for (const l of d.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
  });
  return { logger: createLogger({ format: 'json', destination: stream }), lines };
}

it('adds the run and photo context to every line inside it, and only inside it', async () => {
  const { logger, lines } = capture();
  await withLogContext({ runId: 'r1' }, async () => {
    logger.info({ trigger: 'manual' }, 'run started');
    await withLogContext({ photoId: 7 }, async () => logger.warn('photo line'));
    logger.info('run line');
  });
  logger.info('outside');
  await new Promise((r) => setImmediate(r));
  expect(lines.map(({ runId, photoId, trigger, msg }) => ({ runId, photoId, trigger, msg }))).toEqual([
    { runId: 'r1', photoId: undefined, trigger: 'manual', msg: 'run started' },
    { runId: 'r1', photoId: 7, trigger: undefined, msg: 'photo line' },
    // a line's own fields never stick to the context
    { runId: 'r1', photoId: undefined, trigger: undefined, msg: 'run line' },
    { runId: undefined, photoId: undefined, trigger: undefined, msg: 'outside' },
  ]);
});

it('redacts a registered secret wherever it appears in a line', async () => {
  const { logger, lines } = capture();
  registerSecret('pat-0123456789-secret');
  logger.error({ err: new Error('refused token pat-0123456789-secret') }, 'login failed for pat-0123456789-secret');
  await new Promise((r) => setImmediate(r));
  const text = JSON.stringify(lines);
  expect(text).not.toContain('pat-0123456789-secret');
  expect(text).toContain('[REDACTED]');
});
