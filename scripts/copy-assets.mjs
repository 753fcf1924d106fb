// Copies the SQL migrations (and the PostgreSQL worker thread) next to the compiled code so dist/ runs on its own.
import { cpSync, mkdirSync } from 'node:fs';
mkdirSync('dist/db/migrations', { recursive: true });
cpSync('src/db/migrations', 'dist/db/migrations', { recursive: true });
// The PostgreSQL connection thread is plain JavaScript, loaded by URL at run time.
cpSync('src/db/pg-worker.mjs', 'dist/db/pg-worker.mjs');
