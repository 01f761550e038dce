/**
 * The simulator's local SQS endpoint, driven by the real @aws-sdk/client-sqs: the queue behaviour the
 * consumer relies on (visibility timeouts, receive counts, long polling, deletes, dead letters) is pinned
 * down here, so the end-to-end queue tests can trust it.
 */
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageBatchCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { afterEach, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator, type StatusQueueOptions } from '../src/simulator/index.js';

let running: Array<{ sim: Simulator; sqs: SQSClient }> = [];
afterEach(async () => {
  for (const r of running) r.sqs.destroy();
  await Promise.all(running.map((r) => r.sim.close()));
  running = [];
});

async function start(queue: Partial<StatusQueueOptions> = {}, photoCount = 3) {
  const sim = await startSimulator({ photoCount, statusQueue: { status: 'READY_FOR_DOWNLOAD', messageType: 'ID', ...queue } });
  const sqs = new SQSClient({ endpoint: sim.queue!.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  running.push({ sim, sqs });
  return { sim, sqs, url: sim.queue!.url };
}

const receive = (sqs: SQSClient, url: string, extra: Partial<ConstructorParameters<typeof ReceiveMessageCommand>[0]> = {}) =>
  sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, MessageSystemAttributeNames: ['ApproximateReceiveCount'], ...extra }));

describe('simulator status queue through the AWS SDK', () => {
  it('enqueues the photos already ready, and each photo that becomes ready, as ID or FULL messages', async () => {
    const { sim, sqs, url } = await start({ messageType: 'ID' });
    const first = await receive(sqs, url);
    expect(first.Messages?.map((m) => JSON.parse(m.Body!) as unknown)).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);

    sim.setStatus(2, 'ON_HOLD');
    sim.setStatus(2, 'READY_FOR_DOWNLOAD');
    const added = sim.addPhoto({ status: 'READY_FOR_DOWNLOAD' });
    sim.addPhoto({ status: 'PENDING' });
    const next = await receive(sqs, url);
    expect(next.Messages?.map((m) => JSON.parse(m.Body!) as unknown)).toEqual([{ id: 2 }, { id: added.id }]);

    const full = await start({ messageType: 'FULL' }, 1);
    const [message] = (await receive(full.sqs, full.url)).Messages ?? [];
    const photo = JSON.parse(message!.Body!) as { id: number; version: number; status: string; person: { identifier: string } };
    expect(photo).toMatchObject({ id: 1, version: full.sim.photo(1)!.version, status: 'READY_FOR_DOWNLOAD' });
    expect(photo.person.identifier).toBe(full.sim.photo(1)!.person.identifier);
  });

  it('hides a received message for the visibility timeout, then delivers it again with a higher receive count', async () => {
    const { sqs, url } = await start({ visibilityTimeoutSeconds: 1 }, 1);
    const first = await receive(sqs, url);
    expect(first.Messages?.[0]?.Attributes?.ApproximateReceiveCount).toBe('1');
    expect((await receive(sqs, url)).Messages).toBeUndefined();
    await new Promise((r) => setTimeout(r, 1100));
    const again = await receive(sqs, url);
    expect(again.Messages?.[0]?.MessageId).toBe(first.Messages?.[0]?.MessageId);
    expect(again.Messages?.[0]?.Attributes?.ApproximateReceiveCount).toBe('2');
    expect(again.Messages?.[0]?.ReceiptHandle).not.toBe(first.Messages?.[0]?.ReceiptHandle);
  });

  it('long-polls until a message arrives, and answers empty at WaitTimeSeconds', async () => {
    const { sim, sqs, url } = await start({}, 0);
    let t = Date.now();
    expect((await receive(sqs, url, { WaitTimeSeconds: 1 })).Messages).toBeUndefined();
    expect(Date.now() - t).toBeGreaterThanOrEqual(950);

    t = Date.now();
    setTimeout(() => sim.addPhoto({}), 200);
    const got = await receive(sqs, url, { WaitTimeSeconds: 5 });
    expect(got.Messages).toHaveLength(1);
    expect(Date.now() - t).toBeLessThan(2000);
  });

  it('caps a receive at MaxNumberOfMessages and rejects more than 10', async () => {
    const { sqs, url } = await start({}, 14);
    expect((await receive(sqs, url, { MaxNumberOfMessages: 4 })).Messages).toHaveLength(4);
    expect((await receive(sqs, url)).Messages).toHaveLength(10);
    await expect(receive(sqs, url, { MaxNumberOfMessages: 11 })).rejects.toThrow(/MaxNumberOfMessages/);
  });

  it('deletes with the current receipt handle only; batches report each entry', async () => {
    const { sim, sqs, url } = await start({ visibilityTimeoutSeconds: 1 }, 3);
    const deleted: string[] = [];
    sim.queue!.onDelete((m) => deleted.push(m.body));
    const [a, b, c] = (await receive(sqs, url)).Messages!;
    await new Promise((r) => setTimeout(r, 1100));
    const again = (await receive(sqs, url, { MaxNumberOfMessages: 1 })).Messages![0]!;
    expect(again.MessageId).toBe(a!.MessageId);
    // The stale handle of a message received again is accepted but does not delete it, as in SQS.
    await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: a!.ReceiptHandle }));
    expect(sim.queue!.contents().map((m) => m.messageId)).toContain(a!.MessageId);
    await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: again.ReceiptHandle }));

    const batch = await sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: url,
        Entries: [
          { Id: 'b', ReceiptHandle: b!.ReceiptHandle },
          { Id: 'c', ReceiptHandle: c!.ReceiptHandle },
          { Id: 'bad', ReceiptHandle: 'not-a-handle' },
        ],
      }),
    );
    expect(batch.Successful?.map((s) => s.Id)).toEqual(['b', 'c']);
    expect(batch.Failed?.map((f) => [f.Id, f.Code])).toEqual([['bad', 'ReceiptHandleIsInvalid']]);
    // b and c had timed out but were not received again, so their handles were still current.
    expect(sim.queue!.contents()).toEqual([]);
    expect(deleted.map((d) => JSON.parse(d) as unknown)).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);
  });

  it('extends or ends visibility with ChangeMessageVisibility, and refuses it for a message not in flight', async () => {
    const { sqs, url } = await start({ visibilityTimeoutSeconds: 1 }, 1);
    const [m] = (await receive(sqs, url)).Messages!;
    await sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle: m!.ReceiptHandle, VisibilityTimeout: 3 }));
    await new Promise((r) => setTimeout(r, 1200));
    expect((await receive(sqs, url)).Messages).toBeUndefined();
    await sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle: m!.ReceiptHandle, VisibilityTimeout: 0 }));
    const back = (await receive(sqs, url)).Messages!;
    expect(back[0]?.MessageId).toBe(m!.MessageId);
    await expect(sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle: m!.ReceiptHandle, VisibilityTimeout: 5 }))).rejects.toMatchObject({
      name: 'MessageNotInflight',
    });
  });

  it('sends messages with a checked MD5, reports attributes, resolves the queue URL, and dead-letters after maxReceiveCount', async () => {
    const { sim, sqs, url } = await start({ visibilityTimeoutSeconds: 1, maxReceiveCount: 2 }, 0);
    const sent = await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'not json ✓' }));
    expect(sent.MessageId).toBeTruthy();
    expect((await sqs.send(new GetQueueUrlCommand({ QueueName: sim.queue!.name }))).QueueUrl).toBe(url);
    const attrs = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['All'] }));
    expect(attrs.Attributes).toMatchObject({ VisibilityTimeout: '1', ApproximateNumberOfMessages: '1' });
    expect(JSON.parse(attrs.Attributes!.RedrivePolicy!)).toMatchObject({ maxReceiveCount: 2 });

    for (let i = 1; i <= 2; i++) {
      const got = (await receive(sqs, url)).Messages!;
      expect(got[0]?.Body).toBe('not json ✓');
      await new Promise((r) => setTimeout(r, 1100));
    }
    expect((await receive(sqs, url)).Messages).toBeUndefined();
    expect(sim.queue!.deadLetters().map((m) => [m.messageId, m.receiveCount])).toEqual([[sent.MessageId, 2]]);
  });

  it('answers an unknown queue with QueueDoesNotExist', async () => {
    const { sqs, url } = await start({}, 0);
    await expect(receive(sqs, `${url}-nope`)).rejects.toMatchObject({ name: 'QueueDoesNotExist' });
    await expect(sqs.send(new GetQueueUrlCommand({ QueueName: 'nope' }))).rejects.toMatchObject({ name: 'QueueDoesNotExist' });
  });
});
