// The deploy/ folder: systemd units, the installer, the container cleanup script, nginx and Traefik examples.
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { configSchema } from '../src/config.js';
import { ROOT, removeDir, tempDir } from './helpers.js';

const DEPLOY = path.join(ROOT, 'deploy');
const UNITS = ['factory.service', 'factory-cleanup.service', 'factory-cleanup.timer'];
const SCRIPTS = ['install.sh', 'cleanup-containers.sh'];
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) removeDir(d);
});

function tmp(): string {
  const d = tempDir('factory-deploy-');
  dirs.push(d);
  return d;
}

function which(cmd: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}
function run(cmd: string, args: string[], env: Record<string, string | undefined> = process.env, cwd = ROOT): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const readDeploy = (f: string) => readFileSync(path.join(DEPLOY, f), 'utf8');
/** `Key=value` settings of a unit file (last one wins), ignoring comments. */
function unitSettings(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const hit = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (hit) m.set(hit[1]!, hit[2]!);
  }
  return m;
}

const systemdAnalyze = which('systemd-analyze');
const isRoot = process.getuid?.() === 0;

describe('systemd units', () => {
  it.skipIf(!systemdAnalyze)(
    `pass systemd-analyze verify${systemdAnalyze ? '' : ' (skipped: systemd-analyze is not installed on this machine)'}`,
    async () => {
      // Verify a copy: ExecStart must name an existing node binary, which is not /usr/bin/node everywhere.
      const dir = tmp();
      for (const u of UNITS) {
        let text = readDeploy(u);
        if (!existsSync('/usr/bin/node')) text = text.replaceAll('/usr/bin/node', process.execPath);
        writeFileSync(path.join(dir, u), text);
      }
      const r = await run(systemdAnalyze!, ['verify', ...UNITS.map((u) => path.join(dir, u))]);
      // verify exits 0 even for unknown keys or bad values; it only prints them. Nothing may mention our units.
      const ours = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => UNITS.some((u) => l.includes(u)));
      expect(ours, ours.join('\n')).toEqual([]);
      expect(r.code, r.stderr).toBe(0);
    },
  );

  it('factory.service has the settings operations depend on', () => {
    const s = unitSettings(readDeploy('factory.service'));
    expect(s.get('Type')).toBe('simple');
    expect(s.get('User')).toBe('factory');
    expect(s.get('WorkingDirectory')).toBe('/opt/factory');
    expect(s.get('EnvironmentFile')).toBe('/opt/factory/.env');
    expect(s.get('ExecStart')).toBe('/usr/bin/node /opt/factory/dist/bundle/main.js');
    expect(s.get('Restart')).toBe('always');
    expect(s.get('KillMode')).toBe('mixed');
    expect(s.get('NoNewPrivileges')).toBe('yes');
    expect(s.get('ProtectSystem')).toBe('full');
    expect(s.get('PrivateTmp')).toBe('yes');
    expect(s.get('RestartPreventExitStatus')).toBe('78');
    // Long enough for the graceful stop with the default settings: grace, then the agents' kill grace.
    const defaults = configSchema.parse({});
    const needed = defaults.shutdown.grace_seconds + defaults.agent.kill_grace_seconds + 10;
    expect(Number(s.get('TimeoutStopSec'))).toBeGreaterThanOrEqual(needed);
  });

  it('the cleanup timer starts the cleanup service, which runs the script', () => {
    const timer = unitSettings(readDeploy('factory-cleanup.timer'));
    expect(timer.get('Unit')).toBe('factory-cleanup.service');
    expect(timer.get('OnCalendar')).toBeTruthy();
    const svc = unitSettings(readDeploy('factory-cleanup.service'));
    expect(svc.get('Type')).toBe('oneshot');
    expect(svc.get('ExecStart')).toContain('/opt/factory/deploy/cleanup-containers.sh');
  });
});

describe('shell scripts', () => {
  for (const script of SCRIPTS) {
    it(`${script} parses (bash -n) and is executable`, async () => {
      const file = path.join(DEPLOY, script);
      const r = await run('bash', ['-n', file]);
      expect(r.code, r.stderr).toBe(0);
      expect(statSync(file).mode & 0o111).not.toBe(0);
      expect(readFileSync(file, 'utf8')).toContain('set -euo pipefail');
    });
  }
});

describe('install.sh', () => {
  const steps = [
    'checking prerequisites',
    'creating the service account',
    'creating directories',
    'copying the source',
    'installing dependencies (npm ci)',
    'building (npm run build)',
    'removing development dependencies (npm prune --omit=dev)',
    'creating .env',
    'installing systemd units',
    'linking the factory command',
    'next steps',
  ];

  it('--dry-run prints every step and changes nothing', async () => {
    const dir = tmp();
    const prefix = path.join(dir, 'opt', 'factory');
    const systemd = path.join(dir, 'systemd');
    const bin = path.join(dir, 'bin');
    const r = await run('bash', [
      path.join(DEPLOY, 'install.sh'),
      '--dry-run',
      '--prefix',
      prefix,
      '--user',
      'factory-test-user',
      '--systemd-dir',
      systemd,
      '--bin-dir',
      bin,
    ]);
    expect(r.code, r.stderr).toBe(0);
    for (const s of steps) expect(r.stdout).toContain(`==> ${s}`);
    for (const cmd of [
      'useradd --system',
      `mkdir -p ${prefix}`,
      'npm ci',
      'npm run build',
      'npm prune --omit=dev',
      `${prefix}/.env`,
      'chmod 600',
      `${systemd}/factory.service`,
      `${systemd}/factory-cleanup.timer`,
      'systemctl daemon-reload',
      'systemctl enable factory.service',
      `ln -sfn ${prefix}/bin/factory.js ${bin}/factory`,
      'factory-test-user',
      'factory doctor',
      'systemctl start factory',
    ]) {
      expect(r.stdout).toContain(cmd);
    }
    expect(r.stdout).toContain('Dry run: nothing was changed.');
    for (const p of [path.join(dir, 'opt'), systemd, bin]) expect(existsSync(p)).toBe(false);
  });

  it('--dry-run uses a checkout in place when it already is the prefix', async () => {
    const r = await run('bash', [path.join(DEPLOY, 'install.sh'), '--dry-run', '--prefix', ROOT, '--systemd-dir', path.join(tmp(), 'sd')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('using it in place');
    expect(r.stdout).not.toMatch(/rsync|tar -C/);
  });

  it('rejects unknown options and relative prefixes', async () => {
    const bad = await run('bash', [path.join(DEPLOY, 'install.sh'), '--dry-run', '--frobnicate']);
    expect(bad.code).toBe(2);
    const rel = await run('bash', [path.join(DEPLOY, 'install.sh'), '--dry-run', '--prefix', 'relative/dir']);
    expect(rel.code).toBe(2);
    expect(rel.stderr).toContain('absolute');
  });

  it.skipIf(!isRoot)(`installs for real into a prefix and is idempotent${isRoot ? '' : ' (skipped: needs root)'}`, async () => {
    const dir = tmp();
    const prefix = path.join(dir, 'opt');
    const systemd = path.join(dir, 'sd');
    const bin = path.join(dir, 'bin');
    // A stand-in npm: the real one would download every dependency.
    const fakeBin = path.join(dir, 'fakebin');
    mkdirSync(fakeBin);
    const npmLog = path.join(dir, 'npm.log');
    writeFileSync(
      path.join(fakeBin, 'npm'),
      `#!/bin/sh\necho "$*" >> "${npmLog}"\n[ "$1 $2" = "run build" ] && mkdir -p dist/bundle && echo built > dist/bundle/main.js\nexit 0\n`,
    );
    chmodSync(path.join(fakeBin, 'npm'), 0o755);
    const env = { ...process.env, PATH: `${fakeBin}:${process.env.PATH}` };
    const args = [
      path.join(DEPLOY, 'install.sh'),
      '--prefix',
      prefix,
      '--user',
      'root',
      '--systemd-dir',
      systemd,
      '--bin-dir',
      bin,
      '--no-systemctl',
    ];

    const first = await run('bash', args, env);
    expect(first.code, first.stderr + first.stdout).toBe(0);
    expect(readFileSync(npmLog, 'utf8')).toMatch(/^ci --no-audit --no-fund\nrun build\nprune --omit=dev --no-audit --no-fund\n$/);
    expect(existsSync(path.join(prefix, 'dist', 'bundle', 'main.js'))).toBe(true);
    expect(existsSync(path.join(prefix, 'node_modules'))).toBe(false);
    const envFile = path.join(prefix, '.env');
    expect(statSync(envFile).mode & 0o777).toBe(0o600);
    // Empty overrides are commented out so they cannot hide the unit's defaults.
    expect(readFileSync(envFile, 'utf8')).toMatch(/^# FACTORY_HOST=/m);
    expect(readFileSync(envFile, 'utf8')).not.toMatch(/^FACTORY_HOST=/m);
    expect(readFileSync(envFile, 'utf8')).toMatch(/^GITHUB_TOKEN=$/m);
    const unit = unitSettings(readFileSync(path.join(systemd, 'factory.service'), 'utf8'));
    expect(unit.get('ExecStart')).toBe(`/usr/bin/node ${prefix}/dist/bundle/main.js`);
    expect(unit.get('EnvironmentFile')).toBe(`${prefix}/.env`);
    expect(unit.get('User')).toBe('root');
    expect(readlinkSync(path.join(bin, 'factory'))).toBe(path.join(prefix, 'bin', 'factory.js'));
    expect(lstatSync(path.join(prefix, 'data')).isDirectory()).toBe(true);

    // Second run: the operator's edits survive, nothing is reinstalled needlessly.
    writeFileSync(path.join(prefix, 'config.yml'), 'max_concurrent_agents: 7\n');
    writeFileSync(envFile, 'GITHUB_TOKEN=kept\n');
    const second = await run('bash', args, env);
    expect(second.code, second.stderr + second.stdout).toBe(0);
    expect(readFileSync(path.join(prefix, 'config.yml'), 'utf8')).toBe('max_concurrent_agents: 7\n');
    expect(readFileSync(envFile, 'utf8')).toBe('GITHUB_TOKEN=kept\n');
    expect(second.stdout).toContain('account root exists');
    expect(second.stdout).toContain('factory.service is up to date');
  });
});

describe('cleanup-containers.sh', () => {
  const script = path.join(DEPLOY, 'cleanup-containers.sh');

  it('exits 0 with a message when docker is not installed', async () => {
    const r = await run('bash', [script], { ...process.env, DOCKER: '/nonexistent/docker' });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('docker is not installed');
  });

  it('removes only labelled containers older than the maximum age', async () => {
    const dir = tmp();
    const log = path.join(dir, 'docker.log');
    const fake = path.join(dir, 'docker');
    const recent = new Date(Date.now() - 3600_000).toISOString();
    // old: created 2020; fresh: created an hour ago; relabelled: created now but labelled 2020 (label wins).
    writeFileSync(
      fake,
      [
        '#!/bin/bash',
        `echo "$*" >> "${log}"`,
        'case "$1" in',
        '  info) exit 0 ;;',
        '  ps) printf "old\\nfresh\\nrelabelled\\n" ;;',
        '  inspect) case "${@: -1}" in',
        '    old) echo "2020-01-01T00:00:00.123456789Z|<no value>|/task-1-web|1|test" ;;',
        `    fresh) echo "${recent}|<no value>|/pr-2-web|2|preview" ;;`,
        `    relabelled) echo "${recent}|1577836800000|/pr-3-web|3|preview" ;;`,
        '  esac ;;',
        '  rm) exit 0 ;;',
        'esac',
      ].join('\n'),
    );
    chmodSync(fake, 0o755);

    const dry = await run('bash', [script, '--dry-run', '--max-age-hours', '24'], { ...process.env, DOCKER: fake });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('would remove old');
    expect(readFileSync(log, 'utf8')).not.toMatch(/^rm /m);

    const r = await run('bash', [script, '--max-age-hours', '24'], { ...process.env, DOCKER: fake });
    expect(r.code, r.stderr).toBe(0);
    const removed = readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('rm '));
    expect(removed).toEqual(['rm -f old', 'rm -f relabelled']);
    expect(readFileSync(log, 'utf8')).toContain('ps -a --filter label=factory.task-id');
    expect(r.stdout).toContain('removed 2, kept 1');
  });

  it('rejects a non-numeric age', async () => {
    const r = await run('bash', [script, '--max-age-hours', 'soon'], { ...process.env, DOCKER: '/nonexistent/docker' });
    expect(r.code).toBe(2);
  });
});

describe('nginx and Traefik examples', () => {
  it('nginx streams SSE unbuffered with a long timeout and proxies the rest to 127.0.0.1:8100', () => {
    const conf = readDeploy('nginx/factory.conf');
    for (const loc of ['/api/messages/stream/sse', '/api/events/stream']) {
      const block = new RegExp(`location ${loc.replace(/\//g, '\\/')} \\{([^}]*)\\}`).exec(conf)?.[1] ?? '';
      for (const d of [
        'proxy_buffering off;',
        'proxy_cache off;',
        'proxy_read_timeout 24h;',
        'proxy_http_version 1.1;',
        "proxy_set_header Connection '';",
        'proxy_pass http://127.0.0.1:8100;',
      ]) {
        expect(block, `${loc}: ${d}`).toContain(d);
      }
    }
    expect(conf).toMatch(/location \/ \{[^}]*proxy_pass http:\/\/127\.0\.0\.1:8100;[^}]*X-Forwarded-Proto/);
    expect(conf).toContain('ssl_certificate     /etc/letsencrypt/live/');
    expect(conf).toContain('FACTORY_AUTH_TOKEN');
    // Braces balance (a cheap syntax check where nginx itself is not installed).
    expect((conf.match(/\{/g) ?? []).length).toBe((conf.match(/\}/g) ?? []).length);
  });

  it('the Traefik compose file uses the external traefik network, web/websecure and a DNS-challenge wildcard', () => {
    const compose = parseYaml(readDeploy('traefik/docker-compose.traefik.yml')) as {
      services: { traefik: { command: string[]; networks: string[] } };
      networks: { traefik: { external: boolean } };
    };
    expect(compose.networks.traefik.external).toBe(true);
    const cmd = compose.services.traefik.command.join('\n');
    expect(cmd).toContain('--entrypoints.web.address=:80');
    expect(cmd).toContain('--entrypoints.websecure.address=:443');
    expect(cmd).toContain('--providers.docker.network=traefik');
    expect(cmd).toContain('--providers.docker.exposedbydefault=false');
    expect(cmd).toContain('dnschallenge=true');
    expect(cmd).toContain('sans=*.preview.example.com');
    expect(readDeploy('traefik/README.md')).toContain('docker network create traefik');
  });
});
