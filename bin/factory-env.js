#!/usr/bin/env node
// factory-env: agents start Docker test/preview environments of their worktree through the Factory API.
// Plain JavaScript with no dependencies, so it works without a build. The server runs docker; this
// only sends the request. It uses node:http(s) rather than fetch: a `docker compose up --build` can
// take longer than fetch's fixed 5-minute header timeout.
import { execFileSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';

const HELP = `Usage:
  factory-env up [--compose <file>] --service <name> --port <port> [--preview] [--health-path </path>]
  factory-env status [--json]
  factory-env down [--test | --preview]
  factory-env --help

Starts the service of a compose file from your task's worktree on the Factory host, reachable at a
public https URL through Traefik (no host ports are published). Prints the URL on success.

  up        builds and starts <service> (docker compose up -d --build), waits until it is healthy
            (its healthcheck, else HTTP 2xx on --port at --health-path, default /), prints the URL.
            Test environment: https://task-<id>.<domain>, removed when the task ends.
            --preview: https://pr-<n>.<domain> (preview-task-<id> before a PR exists), kept until
            the pull request is merged or closed, and announced to the team.
            --compose defaults to the first of docker-compose.yml, compose.yaml, compose.yml,
            docker-compose.yaml in the current directory. Paths are relative to the current
            directory and must stay inside the worktree.
  status    lists this task's environments (type, status, URL).
  down      removes this task's environments (all, or only --test / --preview ones).

Environment (set by Factory for every agent): FACTORY_API_URL, FACTORY_TASK_ID, FACTORY_API_TOKEN.
Optional: FACTORY_ENV_TIMEOUT_SECONDS (default 1800).
Exit status: 0 on success, 1 on any error (the message goes to stderr).`;

class UsageError extends Error {}

function parseArgs(argv) {
  const opts = { _: [] };
  const valued = new Set(['compose', 'service', 'port', 'health-path']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') {
      opts.help = true;
      continue;
    }
    if (!a.startsWith('--')) {
      opts._.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const key = eq > 0 ? a.slice(2, eq) : a.slice(2);
    if (valued.has(key)) {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined || v === '') throw new UsageError(`--${key} needs a value`);
      opts[key] = v;
    } else if (['preview', 'test', 'json'].includes(key)) {
      opts[key] = true;
    } else {
      throw new UsageError(`unknown option --${key}`);
    }
  }
  return opts;
}

function env(name, required = true) {
  const v = process.env[name] ?? '';
  if (!v && required) throw new Error(`${name} is not set: factory-env only works inside a Factory task (the agent's environment has it)`);
  return v;
}

// The compose path as the server wants it: relative to the worktree root.
function composePath(given) {
  const cwd = process.cwd();
  let file = given;
  if (!file) {
    file = ['docker-compose.yml', 'compose.yaml', 'compose.yml', 'docker-compose.yaml'].find((f) => existsSync(path.join(cwd, f)));
    if (!file) throw new UsageError('no compose file found in the current directory; pass --compose <file>');
  }
  let root;
  try {
    root = execFileSync('git', ['rev-parse', '--show-toplevel'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    root = '';
  }
  if (!root) {
    if (path.isAbsolute(file))
      throw new UsageError('--compose must be relative to the worktree (not inside a git worktree, cannot convert an absolute path)');
    return file.split(path.sep).join('/');
  }
  const abs = path.resolve(cwd, file);
  const real = (p) => {
    try {
      return realpathSync(p);
    } catch {
      return path.resolve(p);
    }
  };
  const rel = path.relative(real(root), existsSync(abs) ? real(abs) : path.join(real(cwd), file));
  if (!rel || rel.startsWith('..') || path.isAbsolute(rel)) throw new UsageError(`${file} is outside the worktree ${root}`);
  return rel.split(path.sep).join('/');
}

function request(method, url, token, body) {
  const timeoutS = Number(process.env.FACTORY_ENV_TIMEOUT_SECONDS) || 1800;
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const lib = u.protocol === 'https:' ? https : http;
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = lib.request(
      u,
      {
        method,
        headers: {
          accept: 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}),
        },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json, text });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutS * 1000, () => req.destroy(new Error(`no answer within ${timeoutS} s`)));
    req.on('error', reject);
    req.end(data);
  });
}

function errorMessage(res) {
  const j = res.json;
  const msg = j?.error?.message ?? (typeof j?.detail === 'string' ? j.detail : undefined) ?? res.text.slice(0, 500);
  return `${msg || 'request failed'} (HTTP ${res.status})`;
}

async function call(method, suffix, body) {
  const base = env('FACTORY_API_URL').replace(/\/+$/, '');
  const taskId = env('FACTORY_TASK_ID');
  if (!/^\d+$/.test(taskId)) throw new Error(`FACTORY_TASK_ID must be a task number, got "${taskId}"`);
  const url = `${base}/api/tasks/${taskId}/environments${suffix}`;
  let res;
  try {
    res = await request(method, url, env('FACTORY_API_TOKEN', false), body);
  } catch (err) {
    throw new Error(`cannot reach Factory at ${base}: ${err.message}`, { cause: err });
  }
  if (res.status < 200 || res.status >= 300) throw new Error(errorMessage(res));
  return res.json;
}

function line(e) {
  const err = e.last_error ? `  (${e.last_error.split('\n')[0]})` : '';
  return `${e.env_type.padEnd(7)} ${e.status.padEnd(8)} ${e.url || '-'}  ${e.service}:${e.port}  ${e.project}${err}`;
}

async function main(argv) {
  const opts = parseArgs(argv);
  const [cmd, ...extra] = opts._;
  if (opts.help || cmd === 'help') {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  if (!cmd) throw new UsageError('missing command (up, status or down)');
  if (extra.length) throw new UsageError(`unexpected argument ${extra[0]}`);
  switch (cmd) {
    case 'up': {
      if (!opts.service) throw new UsageError('up needs --service <name>');
      if (!opts.port) throw new UsageError('up needs --port <port the service listens on inside the container>');
      const port = Number(opts.port);
      if (!Number.isInteger(port) || port < 1 || port > 65535)
        throw new UsageError(`--port must be a number between 1 and 65535, got "${opts.port}"`);
      const compose = composePath(opts.compose);
      process.stderr.write(
        `factory-env: starting ${opts.service} from ${compose} (${opts.preview ? 'preview' : 'test'} environment); building can take a few minutes…\n`,
      );
      const e = await call('POST', '', {
        compose,
        service: opts.service,
        port,
        preview: Boolean(opts.preview),
        ...(opts['health-path'] ? { health_path: opts['health-path'] } : {}),
      });
      process.stderr.write(`factory-env: ${e.project} is up (${e.health || e.status})\n`);
      process.stdout.write(`${e.url}\n`);
      return 0;
    }
    case 'status': {
      const list = await call('GET', '');
      if (opts.json) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
      else process.stdout.write(list.length ? `${list.map(line).join('\n')}\n` : 'no environments\n');
      return 0;
    }
    case 'down': {
      if (opts.test && opts.preview) throw new UsageError('use --test or --preview, not both');
      const type = opts.test ? '?type=test' : opts.preview ? '?type=preview' : '';
      const r = await call('DELETE', type);
      process.stdout.write(
        r.removed.length ? `${r.removed.map((e) => `removed ${e.project} (${e.env_type})`).join('\n')}\n` : 'no environments to remove\n',
      );
      return 0;
    }
    default:
      throw new UsageError(`unknown command "${cmd}" (up, status or down)`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    const usage = err instanceof UsageError;
    process.stderr.write(`factory-env: ${err.message}${usage ? '\nRun factory-env --help for usage.' : ''}\n`);
    process.exit(1);
  },
);
