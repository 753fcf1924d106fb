// Loopback HTTP fakes for Factory tests. Each: `const f = new FakeX(opts); const base = await f.start(); ... await f.stop();`
export { FakeServer, pollUntil, field } from './base.js';
export type { Fault, FakeServerOptions, Handler, RecordedRequest, Reply, RouteRequest } from './base.js';
export { FakeGitHub, signGitHubWebhook } from './github.js';
export type { CheckRun, FakeGitHubOptions, FakePullRequest } from './github.js';
export { FakePlane, commentEvent, issueEvent, planeLabelId, planeStateId, signPlaneWebhook, stableUuid } from './plane.js';
export type { FakePlaneOptions, IssueEventInput, PlaneComment, PlaneIssue, PlaneLabel, PlaneState } from './plane.js';
export { FakeTelegram } from './telegram.js';
export type { FakeTelegramOptions, SentMessage, TelegramUpdate, TelegramUser } from './telegram.js';
export { FakeOpenAI, cosineSimilarity, embedText, fnv1a, toBase64Float32 } from './openai.js';
export type { FakeOpenAIOptions } from './openai.js';
