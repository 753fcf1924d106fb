/**
 * Pure ranking helpers for recall.
 *
 * Each retriever (BM25 full text, KNN over embeddings) yields candidates with a raw relevance (BM25 score or
 * cosine similarity). A candidate from another repo has its relevance multiplied by OTHER_REPO_WEIGHT, so
 * of two equally relevant memories the one from the queried repo wins, yet a much more relevant memory from
 * another repo can still come first. Each retriever's list is then sorted by that adjusted relevance and
 * the lists are merged by reciprocal rank fusion: score = Σ 1 / (k + rank), k = 60, rank from 1.
 */
import type { MemoryRecord } from './types.js';

export const RRF_K = 60;
export const OTHER_REPO_WEIGHT = 0.5;

export interface Candidate {
  record: MemoryRecord;
  /** Raw relevance from one retriever: higher is better. */
  relevance: number;
}

function newerFirst(a: MemoryRecord, b: MemoryRecord): number {
  return a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0;
}

/** Candidates of one retriever ordered by repo-adjusted relevance (ties: same repo, then newer). */
export function rankList(candidates: Candidate[], repo: string, otherRepoWeight = OTHER_REPO_WEIGHT): MemoryRecord[] {
  const seen = new Set<string>();
  return candidates
    .filter((c) => (seen.has(c.record.id) ? false : (seen.add(c.record.id), true)))
    .map((c) => ({ c, adjusted: c.relevance * (c.record.repo === repo ? 1 : otherRepoWeight) }))
    .sort(
      (x, y) =>
        y.adjusted - x.adjusted ||
        Number(y.c.record.repo === repo) - Number(x.c.record.repo === repo) ||
        newerFirst(x.c.record, y.c.record),
    )
    .map(({ c }) => c.record);
}

/** Reciprocal rank fusion of several ranked lists; the fused score is put on each returned record. */
export function fuse(lists: MemoryRecord[][], repo: string, limit: number, k = RRF_K): MemoryRecord[] {
  const fused = new Map<string, { record: MemoryRecord; score: number }>();
  for (const list of lists) {
    list.forEach((record, index) => {
      const entry = fused.get(record.id) ?? { record, score: 0 };
      entry.score += 1 / (k + index + 1);
      fused.set(record.id, entry);
    });
  }
  return [...fused.values()]
    .sort((x, y) => y.score - x.score || Number(y.record.repo === repo) - Number(x.record.repo === repo) || newerFirst(x.record, y.record))
    .slice(0, limit)
    .map(({ record, score }) => ({ ...record, score: Number(score.toFixed(6)) }));
}

/**
 * Drop BM25 hits far below the best one: with OR matching, a query word that occurs in most memories
 * (e.g. "the") matches nearly everything with a near-zero score.
 */
export function dropWeakHits(candidates: Candidate[], ratio = 0.05): Candidate[] {
  const best = Math.max(0, ...candidates.map((c) => c.relevance));
  return best > 0 ? candidates.filter((c) => c.relevance >= best * ratio) : candidates;
}
