#!/usr/bin/env node
// Fake `docker` CLI for tests: records every call and keeps fake container state in a JSON file.
//
// Env: FAKE_DOCKER_LOG    JSONL file, one record per invocation {argv, cwd, files: {path: content}, env, ts}
//      FAKE_DOCKER_STATE  JSON state {projects: {name: {containers: [...]}}, next_id} (default $TMPDIR/fake-docker-state.json)
//      FAKE_DOCKER_DOWN=1       the daemon is down: every command that needs it fails like the real CLI
//      FAKE_DOCKER_UNHEALTHY=1  every container with a health check reports unhealthy
//      FAKE_DOCKER_FAIL_UP=1    `compose up` fails like a broken build
//      FAKE_DOCKER_IP           the IP address containers report (default 127.0.0.1)
//      FAKE_DOCKER_CONTROL      JSON file read on every call, for switches a test flips at run time:
//                               {"down": true, "unhealthy": true, "fail_up": true} (same as the variables above)
// Per service (labels in the agent's compose file): fake.health=unhealthy|starting, fake.up=fail,
// fake.logs=<text> (extra line printed by `compose logs`).
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { parse as parseYaml } from 'yaml';

const argv = process.argv.slice(2);
const control = (() => {
  try {
    return process.env.FAKE_DOCKER_CONTROL ? JSON.parse(readFileSync(process.env.FAKE_DOCKER_CONTROL, 'utf8')) : {};
  } catch {
    return {};
  }
})();
const env = {
  ...process.env,
  ...(control.down ? { FAKE_DOCKER_DOWN: '1' } : {}),
  ...(control.unhealthy ? { FAKE_DOCKER_UNHEALTHY: '1' } : {}),
  ...(control.fail_up ? { FAKE_DOCKER_FAIL_UP: '1' } : {}),
};
const statePath = env.FAKE_DOCKER_STATE || path.join(tmpdir(), 'fake-docker-state.json');
const DOWN_MSG = 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?';

// ---------------------------------------------------------------- recording
function fileArgs(args) {
  const files = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    let f;
    if ((a === '-f' || a === '--file') && i + 1 < args.length) f = args[++i];
    else if (a.startsWith('--file=')) f = a.slice(7);
    if (f !== undefined) {
      const abs = path.resolve(process.cwd(), f);
      try {
        files[f] = readFileSync(abs, 'utf8');
      } catch {
        files[f] = null;
      }
    }
  }
  return files;
}

if (env.FAKE_DOCKER_LOG) {
  const fakeEnv = Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('FAKE_DOCKER_') || k.startsWith('DOCKER_')));
  appendFileSync(
    env.FAKE_DOCKER_LOG,
    JSON.stringify({ ts: new Date().toISOString(), pid: process.pid, argv, cwd: process.cwd(), files: fileArgs(argv), env: fakeEnv }) +
      '\n',
  );
}

// ---------------------------------------------------------------- state (with a lock: tests run ups in parallel)
const lockDir = `${statePath}.lock`;
function withState(fn) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      mkdirSync(lockDir);
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      if (Date.now() > deadline) {
        rmSync(lockDir, { recursive: true, force: true });
        continue;
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
  try {
    const state = existsSync(statePath) ? JSON.parse(readFileSync(statePath, 'utf8') || '{}') : {};
    state.projects ??= {};
    state.next_id ??= 1;
    const out = fn(state);
    const tmp = `${statePath}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(state, null, 2));
    renameSync(tmp, statePath);
    return out;
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}
const readState = () => (existsSync(statePath) ? JSON.parse(readFileSync(statePath, 'utf8') || '{}') : {});
const allContainers = (state) => Object.values(state.projects ?? {}).flatMap((p) => p.containers ?? []);

// ---------------------------------------------------------------- helpers
const out = (s) => process.stdout.write(s.endsWith('\n') || s === '' ? s : `${s}\n`);
function fail(msg, code = 1) {
  process.stderr.write(`${msg}\n`);
  process.exit(code);
}
function needDaemon() {
  if (env.FAKE_DOCKER_DOWN === '1') fail(DOWN_MSG);
}
const keep = (tag) => ({ tag, resolve: (v) => ({ __tag: tag, value: v }) });
const keepColl = (tag, collection) => ({ tag, collection, resolve: (v) => ({ __tag: tag, value: v.toJSON() }) });
const YAML_TAGS = [
  keep('!reset'),
  keep('!override'),
  keepColl('!reset', 'seq'),
  keepColl('!override', 'seq'),
  keepColl('!reset', 'map'),
  keepColl('!override', 'map'),
];

function labelsToMap(l) {
  if (!l) return {};
  if (Array.isArray(l))
    return Object.fromEntries(
      l.map((s) => {
        const i = String(s).indexOf('=');
        return i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + 1)];
      }),
    );
  return Object.fromEntries(Object.entries(l).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

// Merges compose files like Compose does for the keys the fake cares about.
function mergeCompose(files) {
  const services = {};
  const networks = {};
  for (const text of files) {
    const doc = parseYaml(text ?? '', { customTags: YAML_TAGS, logLevel: 'silent' }) ?? {};
    for (const [name, def] of Object.entries(doc.services ?? {})) {
      const s = (services[name] ??= { labels: {}, ports: [], networks: [], healthcheck: null, container_name: null, environment: {} });
      const d = def ?? {};
      Object.assign(s.labels, labelsToMap(d.labels));
      if (d.ports?.__tag === '!reset') s.ports = [];
      else if (d.ports?.__tag === '!override') s.ports = d.ports.value;
      else if (Array.isArray(d.ports)) s.ports.push(...d.ports.map(String));
      if (d.container_name?.__tag === '!reset') s.container_name = null;
      else if (typeof d.container_name === 'string') s.container_name = d.container_name;
      if (d.healthcheck) s.healthcheck = d.healthcheck;
      const nets = Array.isArray(d.networks) ? d.networks : Object.keys(d.networks ?? {});
      for (const n of nets) if (!s.networks.includes(n)) s.networks.push(n);
      if (d.image) s.image = d.image;
      if (d.build) s.build = d.build;
    }
    Object.assign(networks, doc.networks ?? {});
  }
  return { services, networks };
}

// Parses `docker compose [global opts] <sub> [args]`.
function parseCompose(args) {
  const g = { project: undefined, files: [], projectDirectory: undefined };
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i];
    if (a === '-p' || a === '--project-name') g.project = args[++i];
    else if (a.startsWith('--project-name=')) g.project = a.slice(15);
    else if (a === '-f' || a === '--file') g.files.push(args[++i]);
    else if (a.startsWith('--file=')) g.files.push(a.slice(7));
    else if (a === '--project-directory') g.projectDirectory = args[++i];
    else if (a === '--ansi' || a === '--progress' || a === '--env-file') i++;
    else if (a.startsWith('-')) continue;
    else break;
  }
  return { ...g, sub: args[i], rest: args.slice(i + 1) };
}

const positional = (rest, withValue = []) => {
  const pos = [];
  for (let i = 0; i < rest.length; i++) {
    if (withValue.includes(rest[i])) {
      i++;
      continue;
    }
    if (!rest[i].startsWith('-')) pos.push(rest[i]);
  }
  return pos;
};

function psJson(c) {
  return {
    Command: '"node server.js"',
    CreatedAt: c.created,
    ID: c.id.slice(0, 12),
    Image: c.image,
    Labels: Object.entries(c.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(','),
    LocalVolumes: '0',
    Mounts: '',
    Names: c.name,
    Networks: c.networks.join(','),
    Ports: c.ports.join(', '),
    RunningFor: 'a few seconds ago',
    Size: '0B',
    State: c.state,
    Status: c.state === 'running' ? `Up 1 second${c.health ? ` (${c.health})` : ''}` : 'Exited (1) 1 second ago',
  };
}

// ---------------------------------------------------------------- commands
function composeCmd(args) {
  const c = parseCompose(args);
  if (c.sub === 'version') return out('Docker Compose version v2.29.0-fake');
  needDaemon();
  const project = c.project ?? path.basename(c.projectDirectory ?? process.cwd());
  switch (c.sub) {
    case 'up': {
      const wanted = positional(c.rest, ['--scale', '--timeout', '-t', '--pull', '--wait-timeout']);
      const merged = mergeCompose(c.files.map((f) => readFileSync(path.resolve(process.cwd(), f), 'utf8')));
      const names = wanted.length ? wanted : Object.keys(merged.services);
      for (const n of names) if (!merged.services[n]) fail(`no such service: ${n}`);
      const bad = names.find((n) => merged.services[n].labels['fake.up'] === 'fail');
      if (env.FAKE_DOCKER_FAIL_UP === '1' || bad) {
        process.stderr.write(
          `#1 [${bad ?? names[0]} build 1/3] RUN npm ci\n#1 ERROR: process "/bin/sh -c npm ci" did not complete successfully: exit code: 1\n`,
        );
        fail('failed to solve: process "/bin/sh -c npm ci" did not complete successfully: exit code: 1', 17);
      }
      for (const n of Object.values(merged.services)) {
        const ext = n.networks.filter((k) => merged.networks[k]?.external);
        for (const k of ext) if (!(merged.networks[k].name ?? k)) fail(`network ${k} declared as external, but could not be found`);
      }
      withState((state) => {
        const p = (state.projects[project] ??= { containers: [], created: new Date().toISOString() });
        p.files = c.files;
        p.cwd = process.cwd();
        for (const n of names) {
          const s = merged.services[n];
          p.containers = p.containers.filter((x) => x.service !== n);
          const id = createHash('sha256').update(`${project}/${n}/${state.next_id++}`).digest('hex');
          const health = s.healthcheck
            ? env.FAKE_DOCKER_UNHEALTHY === '1' || s.labels['fake.health'] === 'unhealthy'
              ? 'unhealthy'
              : s.labels['fake.health'] === 'starting'
                ? 'starting'
                : 'healthy'
            : null;
          const netNames = s.networks.length
            ? s.networks.map((k) => merged.networks[k]?.name ?? `${project}_${k}`)
            : [`${project}_default`];
          p.containers.push({
            id,
            name: s.container_name ?? `${project}-${n}-1`,
            service: n,
            project,
            image: s.image ?? `${project}-${n}`,
            labels: {
              ...s.labels,
              'com.docker.compose.project': project,
              'com.docker.compose.service': n,
              'com.docker.compose.container-number': '1',
            },
            ports: s.ports,
            networks: netNames,
            health,
            state: 'running',
            created: new Date().toISOString(),
          });
        }
      });
      process.stderr.write(names.map((n) => ` Container ${project}-${n}-1  Started\n`).join(''));
      return;
    }
    case 'down': {
      const existed = withState((state) => {
        const had = Boolean(state.projects[project]);
        delete state.projects[project];
        return had;
      });
      process.stderr.write(
        existed
          ? ` Container ${project}  Removed\n Network ${project}_default  Removed\n`
          : `Warning: No resource found to remove for project "${project}".\n`,
      );
      return;
    }
    case 'ps': {
      const p = readState().projects?.[project];
      const svc = positional(c.rest, ['--format', '--filter', '--status']);
      const list = (p?.containers ?? []).filter((x) => !svc.length || svc.includes(x.service));
      if (c.rest.includes('-q') || c.rest.includes('--quiet')) return out(list.map((x) => x.id).join('\n'));
      return out(
        list.map((x) => JSON.stringify({ ...psJson(x), Project: project, Service: x.service, Health: x.health ?? '' })).join('\n'),
      );
    }
    case 'logs': {
      const p = readState().projects?.[project];
      const svc = positional(c.rest, ['--tail', '-n', '--since', '--until']);
      const lines = [];
      for (const x of (p?.containers ?? []).filter((y) => !svc.length || svc.includes(y.service))) {
        lines.push(`${x.name}  | > starting ${x.service}`, `${x.name}  | listening on :${x.labels['fake.port'] ?? 3000}`);
        if (x.health === 'unhealthy') lines.push(`${x.name}  | Error: connect ECONNREFUSED 127.0.0.1:5432 (fake unhealthy service)`);
        if (x.labels['fake.logs']) lines.push(`${x.name}  | ${x.labels['fake.logs']}`);
      }
      return out(lines.join('\n'));
    }
    case 'config':
      return out(JSON.stringify(mergeCompose(c.files.map((f) => readFileSync(path.resolve(process.cwd(), f), 'utf8')))));
    default:
      fail(`fake docker: unsupported compose command ${c.sub}`);
  }
}

function psCmd(args) {
  needDaemon();
  const filters = [];
  let format = '';
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--filter' || args[i] === '-f') filters.push(args[++i]);
    else if (args[i].startsWith('--filter=')) filters.push(args[i].slice(9));
    else if (args[i] === '--format') format = args[++i];
    else if (args[i].startsWith('--format=')) format = args[i].slice(9);
  }
  const all = args.includes('-a') || args.includes('--all');
  const list = allContainers(readState()).filter(
    (c) =>
      (all || c.state === 'running') &&
      filters.every((f) => {
        if (!f.startsWith('label=')) return true;
        const spec = f.slice(6);
        const eq = spec.indexOf('=');
        return eq < 0 ? spec in c.labels : c.labels[spec.slice(0, eq)] === spec.slice(eq + 1);
      }),
  );
  if (args.includes('-q') || format === '{{.ID}}') return out(list.map((c) => c.id.slice(0, 12)).join('\n'));
  if (format === 'json' || format === '{{json .}}') return out(list.map((c) => JSON.stringify(psJson(c))).join('\n'));
  return out(['CONTAINER ID   IMAGE   NAMES', ...list.map((c) => `${c.id.slice(0, 12)}   ${c.image}   ${c.name}`)].join('\n'));
}

function inspectCmd(args) {
  needDaemon();
  const ids = positional(args, ['--format', '-f', '--type']);
  const state = readState();
  const found = [];
  for (const id of ids) {
    const c = allContainers(state).find((x) => x.id.startsWith(id) || x.name === id);
    if (!c) {
      out(JSON.stringify(found, null, 2));
      fail(`Error: No such object: ${id}`);
    }
    const ip = env.FAKE_DOCKER_IP ?? '127.0.0.1';
    found.push({
      Id: c.id,
      Name: `/${c.name}`,
      Created: c.created,
      State: {
        Status: c.state,
        Running: c.state === 'running',
        ExitCode: 0,
        ...(c.health
          ? {
              Health: {
                Status: c.health,
                FailingStreak: c.health === 'unhealthy' ? 3 : 0,
                Log: [
                  { ExitCode: c.health === 'healthy' ? 0 : 1, Output: c.health === 'unhealthy' ? 'curl: (7) Failed to connect' : 'ok' },
                ],
              },
            }
          : {}),
      },
      Config: { Labels: c.labels, Image: c.image },
      NetworkSettings: { IPAddress: '', Networks: Object.fromEntries(c.networks.map((n) => [n, { IPAddress: ip, NetworkID: n }])) },
    });
  }
  out(JSON.stringify(found, null, 2));
}

function rmCmd(args) {
  needDaemon();
  const ids = positional(args);
  withState((state) => {
    for (const [name, p] of Object.entries(state.projects)) {
      p.containers = p.containers.filter((c) => !ids.some((id) => c.id.startsWith(id)));
      if (!p.containers.length) delete state.projects[name];
    }
  });
  out(ids.join('\n'));
}

const [cmd, ...rest] = argv;
switch (cmd) {
  case 'info':
    needDaemon();
    out(rest.includes('--format') ? '27.0.3-fake' : 'Server Version: 27.0.3-fake');
    break;
  case 'version':
    if (env.FAKE_DOCKER_DOWN === '1') {
      out('Client: 27.0.3-fake');
      fail(DOWN_MSG);
    }
    out(rest.includes('--format') ? '27.0.3-fake' : 'Client: 27.0.3-fake\nServer: 27.0.3-fake');
    break;
  case 'compose':
    composeCmd(rest);
    break;
  case 'ps':
    psCmd(rest);
    break;
  case 'inspect':
    inspectCmd(rest);
    break;
  case 'rm':
    rmCmd(rest);
    break;
  case '--version':
    out('Docker version 27.0.3-fake, build fake');
    break;
  default:
    fail(`fake docker: unsupported command ${cmd ?? '(none)'}`);
}
