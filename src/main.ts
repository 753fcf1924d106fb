// Process entry. Start: config, database (migrated), routes, bind the port, and only then claim work
// (a busy port exits before any task is taken). Stop on SIGTERM/SIGINT: all work first (claiming,
// agents within the grace, outbox, pollers) while HTTP still answers, then HTTP and SSE, then the database.
import { loadConfig, ConfigError } from './config.js';
import { createLogger } from './logger.js';
import { lockDataDir } from './lock.js';
import { createServices } from './composition/root.js';
import { buildApp } from './server/app.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`factory: ${err.message}\n`);
      process.exit(78);
    }
    throw err;
  }
  const logger = createLogger({ level: config.log_level, pretty: config.devLogs || process.stdout.isTTY === true });
  const unlock = lockDataDir(config.data_dir);
  const services = await createServices(config, logger);
  const app = await buildApp(services, { plugins: services.routes });

  if (config.server.hostForced) {
    logger.warn({ requested: config.server.host }, 'FACTORY_AUTH_TOKEN is not set: listening on 127.0.0.1 only');
  } else if (!config.secrets.authToken) {
    logger.warn('FACTORY_AUTH_TOKEN is not set: the API is open to anyone who can reach 127.0.0.1');
  }

  let shuttingDown = false;
  const shutdown = async (signal: string) => {
    if (shuttingDown) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    shuttingDown = true;
    logger.info({ signal }, 'shutting down');
    try {
      await services.stopWork();
      await app.close();
      await services.stop();
    } catch (err) {
      logger.error({ err }, 'error during shutdown');
    }
    unlock();
    logger.info('stopped');
    logger.flush?.();
    // The embedded SurrealDB engine keeps the event loop alive after close(); exit explicitly.
    setImmediate(() => process.exit(0));
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  // A promise nobody handles is a bug whose state we cannot trust: log it and exit non-zero so the
  // supervisor (systemd) restarts a clean process; tasks are durable and resume.
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: reason instanceof Error ? reason : new Error(String(reason)) }, 'unhandled promise rejection: exiting');
    logger.flush?.();
    process.exit(70);
  });

  let address: string;
  try {
    address = await app.listen({ host: config.server.host, port: config.server.port });
  } catch (err) {
    // Nothing was claimed yet: leave the queue as it is.
    logger.fatal({ err, port: config.server.port }, 'cannot listen: nothing was started');
    await services.stop().catch(() => undefined);
    unlock();
    logger.flush?.();
    process.exit(1);
  }
  await services.start();
  logger.info({ address, dataDir: config.data_dir }, 'factory listening');
}

main().catch((err: unknown) => {
  process.stderr.write(`factory: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
