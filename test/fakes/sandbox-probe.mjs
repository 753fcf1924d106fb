#!/usr/bin/env node
// A stand-in agent that tries what a hostile agent would and records what happened. Reads its plan
// (a JSON array of steps) from PROBE_PLAN and appends one JSON line per step to PROBE_OUT.
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { spawn } from 'node:child_process';

const out = (rec) => appendFileSync(process.env.PROBE_OUT, `${JSON.stringify(rec)}\n`);
const err = (e) => String(e?.code ?? e?.message ?? e);

function direct(host, port) {
  return new Promise((resolve) => {
    const s = connect(port, host, () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (e) => resolve(err(e)));
    s.setTimeout(3000, () => {
      s.destroy();
      resolve('timeout');
    });
  });
}

function viaProxy(url) {
  const proxy = new URL(process.env.HTTP_PROXY);
  return new Promise((resolve) => {
    const req = request({ host: proxy.hostname, port: proxy.port, path: url, headers: { host: new URL(url).host } }, (res) => {
      let body = '';
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', (e) => resolve({ status: 0, body: err(e) }));
    req.end();
  });
}

function tunnel(target) {
  const proxy = new URL(process.env.HTTPS_PROXY);
  return new Promise((resolve) => {
    const req = request({ host: proxy.hostname, port: proxy.port, method: 'CONNECT', path: target });
    req.on('connect', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode });
    });
    req.on('response', (res) => resolve({ status: res.statusCode }));
    req.on('error', (e) => resolve({ status: 0, body: err(e) }));
    req.end();
  });
}

function api(path) {
  return new Promise((resolve) => {
    const u = new URL(path, process.env.FACTORY_API_URL);
    request(u, (res) => {
      res.resume();
      resolve({ status: res.statusCode });
    })
      .on('error', (e) => resolve({ status: 0, body: err(e) }))
      .end();
  });
}

for (const step of JSON.parse(process.env.PROBE_PLAN ?? '[]')) {
  const [op, a, b] = step;
  try {
    if (op === 'read') out({ op, path: a, ok: true, content: readFileSync(a, 'utf8') });
    else if (op === 'write') {
      writeFileSync(a, 'probe\n');
      out({ op, path: a, ok: true });
    } else if (op === 'direct') out({ op, target: `${a}:${b}`, result: await direct(a, b) });
    else if (op === 'proxy') out({ op, url: a, ...(await viaProxy(a)) });
    else if (op === 'tunnel') out({ op, target: a, ...(await tunnel(a)) });
    else if (op === 'api') out({ op, path: a, ...(await api(a)) });
    else if (op === 'orphan') {
      // A tool that leaves the process group, as Claude Code's tool runner does.
      const child = spawn('sleep', [String(a)], { detached: true, stdio: 'ignore' });
      child.unref();
      await new Promise((resolve) => {
        child.once('spawn', resolve);
        child.once('error', resolve);
      });
      out({ op, ok: child.pid !== undefined, pid: child.pid });
    } else if (op === 'hang') {
      out({ op });
      setInterval(() => {}, 1000);
      await new Promise(() => {});
    } // the timer keeps the process alive
  } catch (e) {
    out({ op, path: a, ok: false, error: err(e) });
  }
}
