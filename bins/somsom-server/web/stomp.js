// A small STOMP 1.2 client over the browser's WebSocket: CONNECT with a bearer token, SUBSCRIBE
// (with SomSom's `resume-after` header), SEND, heart-beats, and automatic reconnection with
// backoff. The caller resubscribes from its own last seen position on every (re)connect.
const NUL = '\u0000';

function escape(v) {
  return String(v).replace(/\\/g, '\\\\').replace(/\r/g, '\\r').replace(/\n/g, '\\n').replace(/:/g, '\\c');
}
function unescape(v) {
  return v.replace(/\\(.)/g, (_, c) => ({ '\\': '\\', r: '\r', n: '\n', c: ':' })[c] ?? c);
}

export function frame(command, headers = {}, body = '') {
  const lines = [command];
  const raw = command === 'CONNECT';
  for (const [k, v] of Object.entries(headers)) lines.push(raw ? `${k}:${v}` : `${escape(k)}:${escape(v)}`);
  return lines.join('\n') + '\n\n' + body + NUL;
}

export function parse(data) {
  const frames = [];
  for (const chunk of data.split(NUL)) {
    const text = chunk.replace(/^[\r\n]+/, '');
    if (!text) continue;
    const end = text.indexOf('\n\n');
    const head = (end < 0 ? text : text.slice(0, end)).split('\n');
    const headers = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) {
        const k = unescape(line.slice(0, i));
        if (!(k in headers)) headers[k] = unescape(line.slice(i + 1).replace(/\r$/, ''));
      }
    }
    frames.push({ command: head[0].replace(/\r$/, ''), headers, body: end < 0 ? '' : text.slice(end + 2) });
  }
  return frames;
}

export class StompClient {
  constructor(url, token, { onConnect, onError, onState } = {}) {
    Object.assign(this, { url, token, onConnect, onError, onState });
    this.handlers = new Map();
    this.attempt = 0;
    this.closed = false;
    this.nextId = 1;
  }

  connect() {
    this.closed = false;
    const ws = new WebSocket(this.url, ['v12.stomp', 'v11.stomp']);
    this.ws = ws;
    ws.onopen = () => ws.send(frame('CONNECT', {
      'accept-version': '1.2,1.1', host: location.host, 'heart-beat': '10000,10000',
      Authorization: `Bearer ${typeof this.token === 'function' ? this.token() : this.token}`,
    }));
    ws.onmessage = (event) => {
      this.lastSeen = Date.now();
      for (const f of parse(event.data)) this.dispatch(f);
    };
    ws.onclose = () => {
      clearInterval(this.beat);
      this.onState?.('offline');
      if (!this.closed) {
        const delay = Math.min(10000, 500 * 2 ** this.attempt++);
        this.timer = setTimeout(() => this.connect(), delay);
      }
    };
  }

  dispatch(f) {
    if (f.command === 'CONNECTED') {
      this.attempt = 0;
      this.onState?.('online');
      this.beat = setInterval(() => this.ws?.readyState === 1 && this.ws.send('\n'), 10000);
      this.handlers.clear();
      this.onConnect?.();
    } else if (f.command === 'MESSAGE') {
      this.handlers.get(f.headers.subscription)?.(JSON.parse(f.body || 'null'), f);
    } else if (f.command === 'ERROR') {
      this.onError?.(f.headers.message || f.body);
    }
  }

  subscribe(destination, handler, headers = {}) {
    const id = `sub-${this.nextId++}`;
    this.handlers.set(id, handler);
    this.ws.send(frame('SUBSCRIBE', { id, destination, ack: 'auto', ...headers }));
    return id;
  }

  send(destination, value) {
    if (this.ws?.readyState !== 1) return false;
    this.ws.send(frame('SEND', { destination, 'content-type': 'application/json' }, JSON.stringify(value)));
    return true;
  }

  /** Drops the socket as a network failure would (reconnects). */
  drop() { this.ws?.close(); }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    clearInterval(this.beat);
    if (this.ws?.readyState === 1) this.ws.send(frame('DISCONNECT'));
    this.ws?.close();
  }
}
