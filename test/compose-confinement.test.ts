import { describe, expect, it } from 'vitest';
import { inspectCompose } from '../src/docker/compose.js';

const compose = (service: string) =>
  `services:\n  web:\n    build: .\n${service
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n')}\n`;

describe('compose files agents may run', () => {
  it('accepts an ordinary service with named volumes and project-relative mounts', () => {
    const info = inspectCompose(
      compose(
        'expose: ["3000"]\nvolumes:\n  - data:/var/lib/data\n  - ./src:/app/src\n  - type: volume\n    source: cache\n    target: /cache',
      ),
    );
    expect(info.services.get('web')).toMatchObject({ ports: false });
  });

  it.each([
    ['privileged: true', /privileged/],
    ['network_mode: host', /network_mode: host/],
    ['pid: host', /pid: host/],
    ['cap_add: [SYS_ADMIN]', /cap_add/],
    ['devices: ["/dev/kvm:/dev/kvm"]', /devices/],
    ['volumes:\n  - /:/host', /bind mount \//],
    ['volumes:\n  - /var/run/docker.sock:/var/run/docker.sock', /docker\.sock/],
    ['volumes:\n  - ../../secrets:/s', /\.\.\/\.\.\/secrets/],
    ['volumes:\n  - ~/.ssh:/root/.ssh', /~\/\.ssh/],
    ['volumes:\n  - type: bind\n    source: /etc\n    target: /etc', /bind mount \/etc/],
  ])('refuses %s', (setting, message) => {
    expect(() => inspectCompose(compose(setting))).toThrow(message);
  });
});
