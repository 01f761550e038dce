/**
 * The status-queue source: photos from the institution's SQS queue, which CloudCard feeds whenever a photo
 * reaches a status. Any number of consumers can share one queue; SQS hands each message to one of them at a
 * time and the ledger makes a second delivery harmless.
 *
 * A message is deleted only when its photo's outcome is final (stored and committed, or set aside), so a
 * crash at any point means redelivery after the visibility timeout, never a lost photo. While a photo is in
 * flight its message is kept invisible by a heartbeat. Messages are received lazily, never more than there
 * are free slots, so a consumer does not hide messages from the others while it is busy.
 */
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
  type Message,
} from '@aws-sdk/client-sqs';
import type { CloudCardClient } from '../cloudcard/client.js';
import type { Photo } from '../cloudcard/types.js';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import type { OutcomeKind, PhotoOutcome, PhotoSource, WorkItem } from './source.js';

export type QueueMessageType = 'auto' | 'FULL' | 'ID';

export interface QueueSourceOptions {
  sqs: SQSClient;
  queueUrl: string;
  client: CloudCardClient;
  /** The statuses the mapping takes photos from; a photo found in any other status is no longer ours. */
  statuses: readonly string[];
  messageType: QueueMessageType;
  /** The run's concurrency: a receive asks for no more messages than this minus those in flight. */
  concurrency: number;
  /** Long-polling wait, 1..20 seconds. Default 20. */
  waitTimeSeconds?: number;
  logger: Logger;
}

/** What a message body says, before any lookup. */
export type ParsedMessage = { kind: 'photo'; photo: Photo } | { kind: 'id'; id: number } | { kind: 'malformed'; reason: string };

/** Outcomes after which the message has done its job. `left` (may pass) and dry runs keep it for redelivery. */
const FINAL: ReadonlySet<OutcomeKind> = new Set<OutcomeKind>(['stored', 'already-stored', 'superseded', 'held', 'failed', 'unmatched']);

/** Errors that waiting will not cure: stop the consumer with a message instead of retrying forever. */
const FATAL_ERRORS = new Set([
  'QueueDoesNotExist',
  'AWS.SimpleQueueService.NonExistentQueue',
  'AccessDenied',
  'AccessDeniedException',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'SignatureDoesNotMatch',
  'InvalidAddress',
  'CredentialsProviderError',
]);
const MAX_RECEIVE = 10;
const RECEIVE_BACKOFF_MS = [1_000, 2_000, 5_000, 10_000, 30_000];

/**
 * An SQS client from the standard AWS configuration chain. The queue URL names its region
 * (https://sqs.<region>.amazonaws.com/...), so that region is used when the URL has one.
 */
export function createSqsClient(opts: { queueUrl: string; endpoint?: string | undefined }): SQSClient {
  const region = regionOfQueueUrl(opts.queueUrl);
  return new SQSClient({ ...(region ? { region } : {}), ...(opts.endpoint ? { endpoint: opts.endpoint } : {}) });
}

export function regionOfQueueUrl(url: string): string | undefined {
  try {
    return /^sqs[.-]([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/.exec(new URL(url).hostname)?.[1];
  } catch {
    return undefined;
  }
}

/**
 * Reads a message body: the photo JSON (FULL), or its id as `{"id": 123}`, `123` or `"123"` (ID). With
 * 'auto', a body that has the photo's status, person and bytes location is used as it is; anything else
 * with an id is looked up.
 */
export function parseQueueMessage(body: string | undefined, messageType: QueueMessageType): ParsedMessage {
  let value: unknown;
  try {
    value = JSON.parse(body ?? '');
  } catch {
    return { kind: 'malformed', reason: 'body is not JSON' };
  }
  const id = photoIdOf(typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as { id?: unknown }).id : value);
  if (id === undefined) return { kind: 'malformed', reason: 'body has no photo id' };
  if (typeof value !== 'object' || value === null || messageType === 'ID') return { kind: 'id', id };
  const photo = { ...(value as Photo), id };
  if (messageType === 'FULL' || looksLikeFullPhoto(photo)) return { kind: 'photo', photo };
  return { kind: 'id', id };
}

function photoIdOf(value: unknown): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

function looksLikeFullPhoto(photo: Photo): boolean {
  return typeof photo.status === 'string' && typeof photo.person === 'object' && photo.person !== null && Boolean(photo.links?.bytes || photo.externalURL);
}

export class QueueSource implements PhotoSource {
  readonly redelivers = true;
  private readonly log: Logger;
  private inFlight = 0;
  private visibilitySeconds = 30;

  constructor(private readonly opts: QueueSourceOptions) {
    this.log = opts.logger.child({ source: 'queue' });
  }

  async *items(signal: AbortSignal): AsyncIterable<WorkItem> {
    await this.readQueueSettings();
    const buffered: HeldMessage[] = [];
    try {
      while (!signal.aborted) {
        const next = buffered.shift();
        if (!next) {
          // The run pulls only when a slot is free, so at least one is: never take more than the free slots,
          // so a busy consumer does not hide messages the others could be working on.
          const room = Math.max(1, Math.min(MAX_RECEIVE, this.opts.concurrency - this.inFlight));
          buffered.push(...(await this.receive(room, signal)));
          continue;
        }
        const item = await this.workItemFor(next);
        if (item) yield item;
      }
    } finally {
      // Received but never started: give them back now rather than after the visibility timeout.
      await Promise.all(buffered.map((m) => m.release()));
    }
  }

  /** The queue's visibility timeout sets the heartbeat; a missing redrive policy is worth a warning. */
  private async readQueueSettings(): Promise<void> {
    let attributes: Record<string, string> | undefined;
    try {
      const out = await this.opts.sqs.send(new GetQueueAttributesCommand({ QueueUrl: this.opts.queueUrl, AttributeNames: ['VisibilityTimeout', 'RedrivePolicy'] }));
      attributes = out.Attributes;
    } catch (err) {
      throw this.fatalOr(err, 'Cannot read the status queue') ?? err;
    }
    const seconds = Number(attributes?.VisibilityTimeout);
    if (Number.isInteger(seconds) && seconds > 0) this.visibilitySeconds = seconds;
    if (!attributes?.RedrivePolicy) {
      this.log.warn({ queueUrl: this.opts.queueUrl }, 'the status queue has no redrive policy: a message that can never be processed comes back every visibility timeout forever; give the queue a dead-letter queue');
    }
    this.log.info({ queueUrl: this.opts.queueUrl, visibilityTimeoutSeconds: this.visibilitySeconds, messageType: this.opts.messageType }, 'consuming the status queue');
  }

  private async receive(max: number, signal: AbortSignal): Promise<HeldMessage[]> {
    for (let failures = 0; !signal.aborted; failures++) {
      try {
        const out = await this.opts.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: this.opts.queueUrl,
            MaxNumberOfMessages: max,
            WaitTimeSeconds: this.opts.waitTimeSeconds ?? 20,
            MessageSystemAttributeNames: ['ApproximateReceiveCount'],
          }),
          { abortSignal: signal },
        );
        const messages = (out.Messages ?? []).map((m) => new HeldMessage(m, this.opts, this.visibilitySeconds, this.log));
        if (messages.length) this.log.debug({ count: messages.length }, 'received messages');
        return messages;
      } catch (err) {
        if (signal.aborted) return [];
        const fatal = this.fatalOr(err, 'Cannot receive from the status queue');
        if (fatal) throw fatal;
        const delay = RECEIVE_BACKOFF_MS[Math.min(failures, RECEIVE_BACKOFF_MS.length - 1)]!;
        this.log.warn({ err, retryInMs: delay }, 'receiving from the status queue failed; trying again');
        await sleep(delay, signal);
      }
    }
    return [];
  }

  /** Turns one message into a work item, or settles it here when there is no photo to process. */
  private async workItemFor(message: HeldMessage): Promise<WorkItem | undefined> {
    const parsed = parseQueueMessage(message.body, this.opts.messageType);
    if (parsed.kind === 'malformed') {
      // Left for the queue's redrive policy: it comes back only after the visibility timeout, and a
      // dead-letter queue collects it after maxReceiveCount.
      this.log.warn({ messageId: message.id, receiveCount: message.receiveCount, reason: parsed.reason }, 'malformed status queue message left for the redrive policy');
      message.leave();
      return undefined;
    }
    let photo: Photo | null;
    // A redelivered FULL body may be stale (the photo was re-approved or handled meanwhile): read it again.
    if (parsed.kind === 'photo' && message.receiveCount <= 1) photo = parsed.photo;
    else {
      const id = parsed.kind === 'id' ? parsed.id : parsed.photo.id;
      try {
        photo = await this.opts.client.getPhoto(id);
      } catch (err) {
        this.log.warn({ err, messageId: message.id, photoId: id }, 'could not read the photo of a status queue message; it comes back after the visibility timeout');
        message.leave();
        return undefined;
      }
      if (!photo) {
        this.log.info({ messageId: message.id, photoId: id }, 'photo no longer exists in CloudCard; message deleted');
        await message.delete();
        return undefined;
      }
    }
    if (!this.opts.statuses.includes(photo.status)) {
      // Handled already (by another consumer, a polling run, the card office) or a status this mapping does not take.
      const level = parsed.kind === 'photo' && message.receiveCount <= 1 ? 'warn' : 'info';
      this.log[level]({ messageId: message.id, photoId: photo.id, status: photo.status, statuses: this.opts.statuses }, 'photo is not in a status this mapping takes; message deleted');
      await message.delete();
      return undefined;
    }
    this.inFlight++;
    return {
      photo,
      settle: async (outcome: PhotoOutcome) => {
        this.inFlight--;
        if (FINAL.has(outcome.kind)) {
          // An unmatched photo left as the mapping says would otherwise come back every visibility timeout;
          // it stays in its status in CloudCard, so a polling run takes it once its student exists.
          if (outcome.kind === 'unmatched') this.log.info({ messageId: message.id, photoId: photo.id, code: outcome.code }, 'unmatched photo left in CloudCard; message deleted');
          await message.delete();
        } else {
          this.log.info({ messageId: message.id, photoId: photo.id, outcome: outcome.kind, code: outcome.code }, 'message left; it comes back after the visibility timeout');
          message.leave();
        }
      },
    };
  }

  private fatalOr(err: unknown, what: string): ConfigError | undefined {
    const name = (err as { name?: string }).name ?? '';
    if (!FATAL_ERRORS.has(name)) return undefined;
    return new ConfigError(
      `${what} ${this.opts.queueUrl}: ${name}: ${(err as Error).message.replace(/\.$/, '')}. Check CLOUDCARD_SYNC_QUEUE_URL, the AWS region and credentials, and that they allow sqs:ReceiveMessage, sqs:DeleteMessage, sqs:ChangeMessageVisibility and sqs:GetQueueAttributes.`,
      { cause: err },
    );
  }
}

/** One received message, from receive until it is deleted, left or released; keeps itself invisible meanwhile. */
class HeldMessage {
  readonly id: string;
  readonly body: string | undefined;
  readonly receiveCount: number;
  private readonly receiptHandle: string | undefined;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    message: Message,
    private readonly opts: QueueSourceOptions,
    private readonly visibilitySeconds: number,
    private readonly log: Logger,
  ) {
    this.id = message.MessageId ?? '(no MessageId)';
    this.body = message.Body;
    this.receiptHandle = message.ReceiptHandle;
    this.receiveCount = Number(message.Attributes?.ApproximateReceiveCount ?? 1);
    // Extend at half the timeout, so a slow photo (large bytes, a locked student row) is not delivered
    // to another consumer while this one is still working on it.
    this.heartbeat = setInterval(() => void this.extend(), (visibilitySeconds * 1000) / 2);
    this.heartbeat.unref();
  }

  async delete(): Promise<void> {
    this.stop();
    try {
      await this.opts.sqs.send(new DeleteMessageCommand({ QueueUrl: this.opts.queueUrl, ReceiptHandle: this.receiptHandle }));
    } catch (err) {
      // Harmless: the message comes back and the ledger turns it into an acknowledgement without a write.
      this.log.warn({ err, messageId: this.id }, 'could not delete a status queue message; it will be delivered again and skipped');
    }
  }

  /** Not deleted: it becomes visible again when its visibility timeout runs out. */
  leave(): void {
    this.stop();
  }

  /** Never started: visible again right away, for this or another consumer. */
  async release(): Promise<void> {
    this.stop();
    await this.changeVisibility(0).catch(() => undefined);
  }

  private async extend(): Promise<void> {
    try {
      await this.changeVisibility(this.visibilitySeconds);
      this.log.debug({ messageId: this.id }, 'extended the visibility of a message still in flight');
    } catch (err) {
      // Usually the timeout ran out already and the message went to another consumer: the ledger copes.
      this.log.warn({ err, messageId: this.id }, 'could not extend the visibility of a message in flight');
      this.stop();
    }
  }

  private changeVisibility(seconds: number): Promise<unknown> {
    return this.opts.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: this.opts.queueUrl, ReceiptHandle: this.receiptHandle, VisibilityTimeout: seconds }));
  }

  private stop(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
