// A browser client for the chibi websocket protocol, version 1 (server/PROTOCOL.md).
//
// Text frames carry JSON control messages; binary frames carry blobs in chunks:
//   "CHB1" | uint32 big-endian header length H | H bytes of JSON header | payload
// One connection, several requests in flight, each identified by its id.

export const PROTOCOL_VERSION = 1;
// Progress stages in the order the server sends them (photo-only ones are skipped for params).
export const STAGES = ['started', 'decoded', 'face_found', 'params', 'built', 'exported'];
const MAGIC = [0x43, 0x48, 0x42, 0x31];  // "CHB1"
const STAGE_TEXT = {
  started: 'Started',
  decoded: 'Photo decoded',
  face_found: 'Face found',
  params: 'Face analysed',
  built: 'Avatar built',
  exported: 'File written',
};

/** An `error` message from the server: `code` is its stable machine-readable code. */
export class ChibiRequestError extends Error {
  constructor(code, message, detail = {}) {
    super(message);
    this.name = 'ChibiRequestError';
    this.code = code;
    this.detail = detail;
  }
}

async function sha256Hex(bytes) {
  // crypto.subtle exists only in secure contexts (https, localhost); the header field is optional.
  if (!globalThis.crypto || !crypto.subtle) return null;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function encodeFrame(header, payload) {
  const head = new TextEncoder().encode(JSON.stringify(header));
  const frame = new Uint8Array(8 + head.length + payload.length);
  frame.set(MAGIC, 0);
  new DataView(frame.buffer).setUint32(4, head.length, false);
  frame.set(head, 8);
  frame.set(payload, 8 + head.length);
  return frame;
}

export function decodeFrame(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < 8 || MAGIC.some((b, i) => bytes[i] !== b)) throw new Error('binary frame without the CHB1 prefix');
  const length = new DataView(buffer).getUint32(4, false);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
  return { header, payload: bytes.subarray(8 + length) };
}

let nextId = 1;

/** One request: `run(onProgress)` resolves to {bytes, format, params, timings_ms}. */
class PendingRequest {
  constructor(client, message, photo) {
    this.client = client;
    this.id = message.id;
    this.message = message;
    this.photo = photo;
  }

  run(onProgress = () => {}) {
    return new Promise((resolve, reject) => {
      this.onProgress = onProgress;
      this.resolve = resolve;
      this.reject = reject;
      this.result = null;   // the `result` message of item 0
      this.parts = [];      // chunks of the model blob
      this.client.pending.set(this.id, this);
      this.client.send(JSON.stringify(this.message));
      if (this.photo) this.client.sendBlob(this.id, 'photo', this.photo).catch((err) => this.fail(err));
    });
  }

  fail(err) {
    this.client.pending.delete(this.id);
    this.reject(err);
  }

  async finish() {
    this.client.pending.delete(this.id);
    if (!this.result) throw new Error('the server said done without a result');
    const { size, sha256 } = this.result.model;
    const bytes = new Uint8Array(size);
    let offset = 0;
    for (const part of this.parts) { bytes.set(part, offset); offset += part.length; }
    if (offset !== size) throw new Error(`model has ${offset} bytes, the server announced ${size}`);
    const digest = await sha256Hex(bytes);
    if (digest && digest !== sha256) throw new Error('model checksum mismatch');
    return { bytes, format: this.result.format, params: this.result.params || null, timings_ms: this.result.timings_ms };
  }
}

export class ChibiClient {
  /** url: the websocket URL; by default `ws` beside the page (the server's /ws). */
  constructor(url = null) {
    const ws = new URL('ws', window.location.href);
    ws.protocol = ws.protocol === 'https:' ? 'wss:' : 'ws:';
    this.url = url || ws.href;
    this.socket = null;
    this.opening = null;
    this.pending = new Map();
    this.chunkBytes = 256 * 1024;
    this.token = null;
  }

  /** Opens the connection (once) and says hello; resolves to the `welcome` message. */
  connect(token = '') {
    if (this.opening && this.token === token && this.socket && this.socket.readyState <= 1) return this.opening;
    this.close();
    this.token = token;
    this.opening = new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url);
      socket.binaryType = 'arraybuffer';
      this.socket = socket;
      let welcomed = false;
      socket.onopen = () => {
        const hello = { type: 'hello', version: PROTOCOL_VERSION };
        if (token) hello.token = token;
        socket.send(JSON.stringify(hello));
      };
      socket.onmessage = (event) => {
        if (typeof event.data !== 'string') { this.onBinary(event.data); return; }
        const message = JSON.parse(event.data);
        if (!welcomed && message.type === 'welcome') {
          welcomed = true;
          this.chunkBytes = message.chunk_bytes || this.chunkBytes;
          resolve(message);
          return;
        }
        if (!welcomed && message.type === 'error') {
          reject(new ChibiRequestError(message.code, message.message, message));
          return;
        }
        this.onMessage(message);
      };
      socket.onerror = () => {
        if (!welcomed) reject(new Error(`could not connect to ${this.url}`));
      };
      socket.onclose = (event) => {
        if (this.socket === socket) { this.socket = null; this.opening = null; }
        if (!welcomed) reject(new Error(`connection closed (${event.code} ${event.reason})`));
        for (const request of [...this.pending.values()]) {
          request.fail(new ChibiRequestError('connection_closed', `connection closed (${event.code} ${event.reason})`));
        }
      };
    });
    return this.opening;
  }

  close() {
    if (this.socket) this.socket.close(1000, 'bye');
    this.socket = null;
    this.opening = null;
  }

  send(data) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) throw new Error('not connected');
    this.socket.send(data);
  }

  async sendBlob(id, kind, bytes) {
    const sha256 = await sha256Hex(bytes);
    const count = Math.max(1, Math.ceil(bytes.length / this.chunkBytes));
    for (let index = 0; index < count; index++) {
      const offset = index * this.chunkBytes;
      const header = { id, kind, index, count, offset, size: bytes.length };
      if (sha256) header.sha256 = sha256;
      this.send(encodeFrame(header, bytes.subarray(offset, offset + this.chunkBytes)));
    }
  }

  /** A request that sends a photo (bytes of a JPEG / PNG / WebP / HEIC / AVIF file). */
  fromPhoto(photo, options = {}) {
    const id = `web-${nextId++}`;
    return new PendingRequest(this, { type: 'request', id, source: 'photo', options: { ...options, return_params: true } }, photo);
  }

  /** A request built from an AvatarParams object (no photo). */
  fromParams(params, options = {}) {
    const id = `web-${nextId++}`;
    return new PendingRequest(this, { type: 'request', id, source: 'params', params, options: { ...options, return_params: true } }, null);
  }

  cancel(id) {
    if (id && this.pending.has(id)) this.send(JSON.stringify({ type: 'cancel', id }));
  }

  onMessage(message) {
    const request = this.pending.get(message.id);
    if (message.type === 'error') {
      const err = new ChibiRequestError(message.code, message.message, message);
      if (request) request.fail(err);
      else console.warn(`chibi server: ${message.code}: ${message.message}`);
      return;
    }
    if (!request) return;
    if (message.type === 'accepted') {
      request.onProgress({ stage: 'accepted', message: message.queued ? `Queued (${message.queued} ahead)` : 'Accepted', fraction: 0.02 });
    } else if (message.type === 'progress') {
      const index = STAGES.indexOf(message.stage);
      const fraction = index >= 0 ? (index + 1) / (STAGES.length + 1) : null;
      request.onProgress({ stage: message.stage, message: STAGE_TEXT[message.stage] || message.stage, fraction });
    } else if (message.type === 'result') {
      if (message.item === 0) request.result = message;
      request.onProgress({ stage: 'result', message: 'Downloading…', fraction: STAGES.length / (STAGES.length + 1) });
    } else if (message.type === 'done') {
      request.finish().then(request.resolve, request.reject);
    }
  }

  onBinary(buffer) {
    let frame;
    try {
      frame = decodeFrame(buffer);
    } catch (err) {
      console.warn(`chibi server: ${err.message}`);
      return;
    }
    const { header, payload } = frame;
    const request = this.pending.get(header.id);
    // Only item 0's model is kept: the viewer shows one avatar.
    if (!request || header.kind !== 'model' || (header.item || 0) !== 0) return;
    request.parts.push(payload.slice());
  }
}
