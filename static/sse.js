// Shared by the dashboard and the message board: reads a Server-Sent Events byte stream per the
// spec (fields, comments, blank-line dispatch). fetch() is used instead of EventSource so that the
// Authorization header can be sent.
export async function readStream(body, { onFrame, onId, onRetry }) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let ev = { event: 'message', data: [], id: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let nl;
    while ((nl = buf.search(/\r\n|\n|\r/)) >= 0) {
      if (buf[nl] === '\r' && nl === buf.length - 1) break; // a CRLF may be split across chunks
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (ev.id !== null) onId(ev.id);
        if (ev.data.length) onFrame(ev.event, ev.data.join('\n'));
        ev = { event: 'message', data: [], id: null };
        continue;
      }
      if (line.startsWith(':')) continue; // heartbeat comment
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'event') ev.event = val;
      else if (field === 'data') ev.data.push(val);
      else if (field === 'id') ev.id = val;
      else if (field === 'retry' && /^\d+$/.test(val)) onRetry(Number(val));
    }
  }
}
