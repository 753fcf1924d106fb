import { describe, expect, it } from 'vitest';
import { evaluateCondition, validateWorkflow, WorkflowDefinitionError, loopTarget } from '../src/workflows/definition.js';
import { parseReview, issueCounts } from '../src/workflows/review.js';
import { buildHandoff, handoffSection, HANDOFF_LIMITS } from '../src/workflows/handoff.js';
import { extractProtocolObjects } from '../src/agents/protocol.js';

const reject = JSON.stringify({
  approved: false,
  summary: 'Needs work',
  issues: [{ severity: 'major', description: 'No tests', file: 'a.ts', line: 3 }],
});
const approve = JSON.stringify({ approved: true, summary: 'Fine', issues: [{ severity: 'nit', description: 'Typo' }] });

describe('review parsing', () => {
  it('reads a fenced JSON block anywhere in the text', () => {
    const r = parseReview(`I looked at it.\n\n\`\`\`json\n${reject}\n\`\`\`\nThanks.`);
    expect(r).toMatchObject({ parsed: true, approved: false, summary: 'Needs work' });
    expect(r.issues[0]).toEqual({ severity: 'major', description: 'No tests', file: 'a.ts', line: 3 });
  });
  it('reads an unfenced object and takes the last verdict', () => {
    expect(parseReview(`first ${reject} then ${approve}`).approved).toBe(true);
  });
  it('does not accept an approval that lists blocking issues', () => {
    const r = parseReview(
      JSON.stringify({ approved: true, summary: 'ok', issues: [{ severity: 'blocker', description: 'Breaks build' }] }),
    );
    expect(r.approved).toBe(false);
  });
  it('falls back to a conservative reading for malformed or missing verdicts', () => {
    for (const text of ['{"approved": tru', 'Looks good to me!', '']) {
      const r = parseReview(text);
      expect(r.parsed).toBe(false);
      expect(r.approved).toBe(false);
      expect(issueCounts(r).major).toBe(1);
    }
  });
  it('maps unknown severities and drops empty issues', () => {
    const r = parseReview(
      JSON.stringify({
        approved: false,
        issues: [{ severity: 'critical', description: 'x' }, { severity: 'low', description: 'y' }, { severity: 'major' }],
      }),
    );
    expect(r.issues.map((i) => i.severity)).toEqual(['blocker', 'minor']);
  });
});

describe('conditions', () => {
  it('has_issues / no_issues / review_approved', () => {
    expect(evaluateCondition('has_issues', reject)).toBe(true);
    expect(evaluateCondition('no_issues', reject)).toBe(false);
    expect(evaluateCondition('has_issues', approve)).toBe(false);
    expect(evaluateCondition('no_issues', approve)).toBe(true);
    expect(evaluateCondition('review_approved', approve)).toBe(true);
    expect(evaluateCondition('review_approved', reject)).toBe(false);
    // an unreadable review counts as having issues
    expect(evaluateCondition('has_issues', 'garbage')).toBe(true);
    expect(() => evaluateCondition('sometimes', approve)).toThrow(WorkflowDefinitionError);
  });
});

describe('workflow definitions', () => {
  const good = {
    max_iterations: 3,
    steps: [
      { agent: 'coder', output: 'code' },
      { agent: 'reviewer', input: 'code', output: 'review' },
      { agent: 'coder_revision', input: 'review', output: 'rev', condition: 'has_issues', loop_to: 'review' },
    ],
  };
  it('accepts the code_review shape and resolves loop_to by output key', () => {
    expect(() => validateWorkflow('code_review', good)).not.toThrow();
    expect(loopTarget(good, 'review')).toBe(1);
    expect(loopTarget(good, 'reviewer')).toBe(1);
  });
  it.each([
    [{ ...good, steps: [{ agent: 'wizard' }] }, /unknown agent "wizard"/],
    [{ ...good, steps: [...good.steps.slice(0, 2), { agent: 'coder', loop_to: 'nowhere' }] }, /loop_to "nowhere" names no step/],
    [{ ...good, steps: [{ agent: 'coder', condition: 'maybe' }] }, /unknown condition "maybe"/],
    [{ ...good, steps: [{ agent: 'reviewer', input: 'code' }] }, /input "code" is not the output of an earlier step/],
    [{ ...good, steps: [{ agent: 'coder', output: 'x', loop_to: 'x' }] }, /must name an earlier step/],
  ])('rejects a bad definition %#', (def, msg) => {
    expect(() => validateWorkflow('w', def as never)).toThrow(msg);
  });
  it('rejects bad names', () => {
    expect(() => validateWorkflow('../x', good)).toThrow(/workflow name/);
  });
});

describe('handoffs', () => {
  it('extracts handoff_output lines from agent text', () => {
    const text =
      'Done.\n{"type":"handoff_output","summary":"Did X","details":"Because Y","files_changed":["a.ts"],"next_steps":"Review","learnings":["npm test works"]}\n';
    const [obj] = extractProtocolObjects(text);
    const h = buildHandoff('coder', obj, text, []);
    expect(h.output_type).toBe('code_diff');
    expect(h.summary).toBe('Did X');
    expect(h.content).toContain('Because Y');
    expect(h.content).toContain('- a.ts');
  });
  it('derives a handoff from the final text when the agent gave none, and truncates', () => {
    const long = 'x'.repeat(HANDOFF_LIMITS.content + 100);
    const h = buildHandoff('researcher', undefined, `Findings\n${long}`, []);
    expect(h.output_type).toBe('research_notes');
    expect(h.summary).toBe('Findings');
    expect(h.content.length).toBeLessThanOrEqual(HANDOFF_LIMITS.content);
    expect(h.content).toMatch(/truncated by Factory/);
    expect(buildHandoff('coder', undefined, 'oops', [], true).output_type).toBe('error_report');
  });
  it('caps the text injected into the next prompt', () => {
    const s = handoffSection([{ from: 'coder', summary: 's', content: 'y'.repeat(20_000) }]);
    expect(s.length).toBeLessThanOrEqual(HANDOFF_LIMITS.prompt);
    expect(s).toMatch(/truncated by Factory/);
    expect(handoffSection([])).toBe('');
  });
});
