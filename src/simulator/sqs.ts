/**
 * A local status queue that speaks enough of Amazon SQS's JSON protocol (AWS JSON 1.0, `X-Amz-Target:
 * AmazonSQS.<Action>`) for the real @aws-sdk/client-sqs to run against it: SendMessage, ReceiveMessage (long
 * polling, visibility timeout, ApproximateReceiveCount), DeleteMessage(Batch), ChangeMessageVisibility,
 * GetQueueUrl, GetQueueAttributes. After `maxReceiveCount` receives a message moves to a dead-letter list, as
 * a redrive policy would move it.
 *
 * One queue per simulator. The SDK posts to the endpoint's root with the queue URL in the body, so requests
 * are recognised by their X-Amz-Target header, whatever the path.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export interface SimQueueOptions {
  /** Queue name, the last part of its URL. Default 'cloudcard-photos'. */
  name?: string;
  /** Default visibility timeout of the queue (seconds). Default 30. */
  visibilityTimeoutSeconds?: number;
  /** Receives after which a message is dead-lettered instead of delivered again. Default: no redrive policy. */
  maxReceiveCount?: number;
}

/** A message as tests see it. */
export interface SimQueueMessage {
  messageId: string;
  body: string;
  receiveCount: number;
  /** Received and neither deleted nor back to visible yet. */
  inFlight: boolean;
}

export interface SimQueueOperation {
  action: string;
  messageId?: string;
  /** Milliseconds since the queue was created. */
  at: number;
}

export interface SimQueueReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

interface StoredMessage {
  messageId: string;
  body: string;
  md5: string;
  receiveCount: number;
  visibleAt: number;
  /** Only the latest receipt handle can change the message's visibility. */
  receiptHandle?: string;
  firstReceivedAt?: number;
  sentAt: number;
}

const MAX_WAIT_SECONDS = 20;
const MAX_VISIBILITY_SECONDS = 12 * 60 * 60;
const LONG_POLL_TICK_MS = 25;

class SqsError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
    readonly queryCode = code,
  ) {
    super(message);
  }
}

export class SimQueue {
  readonly name: string;
  readonly url: string;
  readonly visibilityTimeoutSeconds: number;
  readonly maxReceiveCount: number | undefined;
  private readonly messages = new Map<string, StoredMessage>();
  private readonly dead: StoredMessage[] = [];
  private readonly log: SimQueueOperation[] = [];
  private readonly deleteListeners = new Set<(message: SimQueueMessage) => void>();
  private readonly created = Date.now();
  private closed = false;
  private stall: { reached: (messageId: string) => void } | undefined;

  constructor(
    /** Scheme, host and port of the server the queue is served from, e.g. http://127.0.0.1:PORT */
    readonly endpoint: string,
    opts: SimQueueOptions = {},
  ) {
    this.name = opts.name ?? 'cloudcard-photos';
    this.url = `${endpoint}/sqs/000000000000/${this.name}`;
    this.visibilityTimeoutSeconds = opts.visibilityTimeoutSeconds ?? 30;
    this.maxReceiveCount = opts.maxReceiveCount;
  }

  /** Enqueues a message, as CloudCard does when a photo reaches the queue's status. Returns its MessageId. */
  send(body: string, delaySeconds = 0): string {
    const messageId = randomUUID();
    const now = Date.now();
    this.messages.set(messageId, { messageId, body, md5: md5(body), receiveCount: 0, visibleAt: now + delaySeconds * 1000, sentAt: now });
    this.record('SendMessage', messageId);
    return messageId;
  }

  /** Messages still in the queue (visible or in flight), oldest first. */
  contents(): SimQueueMessage[] {
    const now = Date.now();
    return [...this.messages.values()].map((m) => ({ messageId: m.messageId, body: m.body, receiveCount: m.receiveCount, inFlight: m.visibleAt > now && m.receiveCount > 0 }));
  }

  /** Messages moved aside after maxReceiveCount receives. */
  deadLetters(): SimQueueMessage[] {
    return this.dead.map((m) => ({ messageId: m.messageId, body: m.body, receiveCount: m.receiveCount, inFlight: false }));
  }

  operations(): SimQueueOperation[] {
    return this.log.map((o) => ({ ...o }));
  }

  /** Called the moment a message is deleted: lets a test see what else was true at that instant. */
  onDelete(listener: (message: SimQueueMessage) => void): () => void {
    this.deleteListeners.add(listener);
    return () => this.deleteListeners.delete(listener);
  }

  /**
   * From now on, delete requests are neither applied nor answered, as if the consumer died the moment it
   * sent them. Resolves with the MessageId of the first such request. `resumeDeletes()` ends it.
   */
  stallDeletes(): Promise<string> {
    return new Promise((resolve) => {
      this.stall = { reached: resolve };
    });
  }

  resumeDeletes(): void {
    this.stall = undefined;
  }

  close(): void {
    this.closed = true;
  }

  /** Handles one request whose X-Amz-Target names an SQS action; `undefined` means "leave it unanswered". */
  async handle(req: IncomingMessage, body: Buffer): Promise<SimQueueReply | undefined> {
    const target = String(req.headers['x-amz-target'] ?? '');
    const action = target.startsWith('AmazonSQS.') ? target.slice('AmazonSQS.'.length) : '';
    try {
      let input: Record<string, unknown>;
      try {
        const parsed: unknown = JSON.parse(body.length ? body.toString('utf8') : '{}');
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
        input = parsed as Record<string, unknown>;
      } catch {
        throw new SqsError('InvalidParameterValue', 'request body is not a JSON object', 400, 'MalformedInput');
      }
      if (action !== 'GetQueueUrl') this.checkQueueUrl(input.QueueUrl);
      switch (action) {
        case 'SendMessage':
          return ok(this.sendAction(input));
        case 'ReceiveMessage':
          return ok(await this.receiveAction(input, req));
        case 'DeleteMessage':
        case 'DeleteMessageBatch':
          if (this.stall) {
            const first = action === 'DeleteMessage' ? this.messageIdOf(input.ReceiptHandle) : this.messageIdOf(asArray(input.Entries)[0]?.ReceiptHandle);
            this.record(`${action}(stalled)`, first);
            this.stall.reached(first ?? '');
            return undefined;
          }
          return ok(action === 'DeleteMessage' ? this.deleteAction(input) : this.deleteBatchAction(input));
        case 'ChangeMessageVisibility':
          return ok(this.changeVisibilityAction(input));
        case 'GetQueueUrl':
          if (input.QueueName !== this.name) throw new SqsError('QueueDoesNotExist', 'The specified queue does not exist.', 400, 'AWS.SimpleQueueService.NonExistentQueue');
          return ok({ QueueUrl: this.url });
        case 'GetQueueAttributes':
          return ok({ Attributes: this.attributes() });
        default:
          throw new SqsError('InvalidAction', `The action ${action || '(none)'} is not valid for this endpoint.`);
      }
    } catch (err) {
      if (err instanceof SqsError) return errorReply(err);
      throw err;
    }
  }

  private sendAction(input: Record<string, unknown>): Record<string, unknown> {
    const body = input.MessageBody;
    if (typeof body !== 'string' || body === '') throw new SqsError('MissingParameter', 'The request must contain the parameter MessageBody.');
    const delay = optionalInt(input.DelaySeconds, 0, 900, 'DelaySeconds') ?? 0;
    const messageId = this.send(body, delay);
    return { MessageId: messageId, MD5OfMessageBody: md5(body) };
  }

  private async receiveAction(input: Record<string, unknown>, req: IncomingMessage): Promise<Record<string, unknown>> {
    const max = optionalInt(input.MaxNumberOfMessages, 1, 10, 'MaxNumberOfMessages') ?? 1;
    const wait = optionalInt(input.WaitTimeSeconds, 0, MAX_WAIT_SECONDS, 'WaitTimeSeconds') ?? 0;
    const visibility = optionalInt(input.VisibilityTimeout, 0, MAX_VISIBILITY_SECONDS, 'VisibilityTimeout') ?? this.visibilityTimeoutSeconds;
    const wanted = new Set([...asStrings(input.AttributeNames), ...asStrings(input.MessageSystemAttributeNames)]);
    const deadline = Date.now() + wait * 1000;
    // Long polling: answer as soon as something is visible, or empty at the deadline (or when the client left).
    for (;;) {
      const taken = this.take(max, visibility);
      if (taken.length || Date.now() >= deadline || this.closed || req.socket.destroyed) {
        return taken.length ? { Messages: taken.map((m) => this.messageJson(m, wanted)) } : {};
      }
      await new Promise((resolve) => setTimeout(resolve, LONG_POLL_TICK_MS));
    }
  }

  private take(max: number, visibilitySeconds: number): StoredMessage[] {
    const now = Date.now();
    const out: StoredMessage[] = [];
    for (const m of this.messages.values()) {
      if (out.length >= max) break;
      if (m.visibleAt > now) continue;
      if (this.maxReceiveCount !== undefined && m.receiveCount >= this.maxReceiveCount) {
        this.messages.delete(m.messageId);
        this.dead.push(m);
        this.record('DeadLetter', m.messageId);
        continue;
      }
      m.receiveCount++;
      m.firstReceivedAt ??= now;
      m.visibleAt = now + visibilitySeconds * 1000;
      m.receiptHandle = `${m.messageId}#${randomUUID()}`;
      this.record('ReceiveMessage', m.messageId);
      out.push(m);
    }
    return out;
  }

  private messageJson(m: StoredMessage, wanted: Set<string>): Record<string, unknown> {
    const all: Record<string, string> = {
      ApproximateReceiveCount: String(m.receiveCount),
      SentTimestamp: String(m.sentAt),
      ApproximateFirstReceiveTimestamp: String(m.firstReceivedAt ?? m.sentAt),
      SenderId: 'AIDASIMULATOR',
    };
    const attributes = Object.fromEntries(Object.entries(all).filter(([k]) => wanted.has('All') || wanted.has(k)));
    return {
      MessageId: m.messageId,
      ReceiptHandle: m.receiptHandle,
      MD5OfBody: m.md5,
      Body: m.body,
      ...(Object.keys(attributes).length ? { Attributes: attributes } : {}),
    };
  }

  private deleteAction(input: Record<string, unknown>): Record<string, unknown> {
    this.deleteByHandle(input.ReceiptHandle);
    return {};
  }

  private deleteBatchAction(input: Record<string, unknown>): Record<string, unknown> {
    const entries = asArray(input.Entries);
    if (!entries.length) throw new SqsError('EmptyBatchRequest', 'There should be at least one entry in the request.', 400, 'AWS.SimpleQueueService.EmptyBatchRequest');
    if (entries.length > 10) throw new SqsError('TooManyEntriesInBatchRequest', 'Maximum number of entries per request are 10.', 400, 'AWS.SimpleQueueService.TooManyEntriesInBatchRequest');
    const successful: Array<{ Id: unknown }> = [];
    const failed: Array<Record<string, unknown>> = [];
    for (const entry of entries) {
      try {
        this.deleteByHandle(entry.ReceiptHandle);
        successful.push({ Id: entry.Id });
      } catch (err) {
        if (!(err instanceof SqsError)) throw err;
        failed.push({ Id: entry.Id, SenderFault: true, Code: err.code, Message: err.message });
      }
    }
    return { Successful: successful, Failed: failed };
  }

  /**
   * As in SQS, deleting with an older receipt handle of a message that was received again succeeds but may
   * leave the message in place; here it always does, which is the case a consumer must survive.
   */
  private deleteByHandle(handle: unknown): void {
    const messageId = this.messageIdOf(handle);
    if (!messageId) throw new SqsError('ReceiptHandleIsInvalid', `The input receipt handle "${String(handle)}" is not a valid receipt handle.`);
    const m = this.messages.get(messageId);
    this.record('DeleteMessage', messageId);
    if (!m || m.receiptHandle !== handle) return;
    this.messages.delete(messageId);
    const info: SimQueueMessage = { messageId, body: m.body, receiveCount: m.receiveCount, inFlight: false };
    for (const listener of this.deleteListeners) listener(info);
  }

  private changeVisibilityAction(input: Record<string, unknown>): Record<string, unknown> {
    const messageId = this.messageIdOf(input.ReceiptHandle);
    if (!messageId) throw new SqsError('ReceiptHandleIsInvalid', `The input receipt handle "${String(input.ReceiptHandle)}" is not a valid receipt handle.`);
    const seconds = optionalInt(input.VisibilityTimeout, 0, MAX_VISIBILITY_SECONDS, 'VisibilityTimeout');
    if (seconds === undefined) throw new SqsError('MissingParameter', 'The request must contain the parameter VisibilityTimeout.');
    const m = this.messages.get(messageId);
    if (!m || m.receiptHandle !== input.ReceiptHandle || m.visibleAt <= Date.now()) {
      throw new SqsError('MessageNotInflight', 'The message referred to is not in flight.', 400, 'AWS.SimpleQueueService.MessageNotInflight');
    }
    m.visibleAt = Date.now() + seconds * 1000;
    this.record('ChangeMessageVisibility', messageId);
    return {};
  }

  private attributes(): Record<string, string> {
    const now = Date.now();
    const all = [...this.messages.values()];
    return {
      QueueArn: `arn:aws:sqs:us-east-1:000000000000:${this.name}`,
      VisibilityTimeout: String(this.visibilityTimeoutSeconds),
      ApproximateNumberOfMessages: String(all.filter((m) => m.visibleAt <= now).length),
      ApproximateNumberOfMessagesNotVisible: String(all.filter((m) => m.visibleAt > now).length),
      ...(this.maxReceiveCount !== undefined
        ? { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: `arn:aws:sqs:us-east-1:000000000000:${this.name}-dlq`, maxReceiveCount: this.maxReceiveCount }) }
        : {}),
    };
  }

  private checkQueueUrl(url: unknown): void {
    if (typeof url !== 'string' || url === '') throw new SqsError('MissingParameter', 'The request must contain the parameter QueueUrl.');
    if (url !== this.url) throw new SqsError('QueueDoesNotExist', 'The specified queue does not exist.', 400, 'AWS.SimpleQueueService.NonExistentQueue');
  }

  private messageIdOf(handle: unknown): string | undefined {
    if (typeof handle !== 'string') return undefined;
    const [messageId, nonce] = handle.split('#');
    return messageId && nonce ? messageId : undefined;
  }

  private record(action: string, messageId?: string): void {
    this.log.push({ action, ...(messageId ? { messageId } : {}), at: Date.now() - this.created });
  }
}

function md5(text: string): string {
  return createHash('md5').update(text, 'utf8').digest('hex');
}

function optionalInt(value: unknown, min: number, max: number, name: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new SqsError('InvalidParameterValue', `Value ${String(value)} for parameter ${name} is invalid. Must be between ${min} and ${max}.`);
  return n;
}

function asStrings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function asArray(value: unknown): Array<Record<string, unknown>> {
  return Array.isArray(value) ? (value.filter((v) => v !== null && typeof v === 'object') as Array<Record<string, unknown>>) : [];
}

function ok(value: Record<string, unknown>): SimQueueReply {
  return { status: 200, headers: { 'Content-Type': 'application/x-amz-json-1.0', 'x-amzn-RequestId': randomUUID() }, body: Buffer.from(JSON.stringify(value)) };
}

function errorReply(err: SqsError): SimQueueReply {
  return {
    status: err.status,
    headers: {
      'Content-Type': 'application/x-amz-json-1.0',
      'x-amzn-RequestId': randomUUID(),
      // The SDK's query-compatible mode reads the classic error code from this header.
      'x-amzn-query-error': `${err.queryCode};Sender`,
    },
    body: Buffer.from(JSON.stringify({ __type: `com.amazonaws.sqs#${err.code}`, message: err.message })),
  };
}

export interface StatusQueueOptions extends SimQueueOptions {
  /** The status whose arrival enqueues a message, e.g. READY_FOR_DOWNLOAD. */
  status: string;
  /** FULL: the photo JSON; ID: `{"id": <photo id>}`. */
  messageType: 'FULL' | 'ID';
  /** Enqueue the photos already in `status` when the simulator starts (as if they had just arrived). Default true. */
  enqueueExisting?: boolean;
}

/** The queue CloudCard would feed: a message whenever a photo reaches the configured status. */
export class SimStatusQueue extends SimQueue {
  readonly status: string;
  readonly messageType: 'FULL' | 'ID';

  constructor(
    endpoint: string,
    opts: StatusQueueOptions,
    /** The photo's full JSON as GET /photo/{id} returns it, or undefined for an unknown id. */
    private readonly photoJson: (id: number) => Record<string, unknown> | undefined,
  ) {
    super(endpoint, opts);
    this.status = opts.status;
    this.messageType = opts.messageType;
  }

  /** Enqueues the message CloudCard would send for this photo now. Returns its MessageId. */
  enqueuePhoto(id: number): string {
    const json = this.photoJson(id);
    if (!json) throw new Error(`no photo ${id}`);
    return this.send(JSON.stringify(this.messageType === 'FULL' ? json : { id }));
  }

  /** Called on every status write; CloudCard notifies each time a photo reaches the status. */
  photoChanged(photo: { id: number; status: string }): void {
    if (photo.status === this.status) this.enqueuePhoto(photo.id);
  }
}
