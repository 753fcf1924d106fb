// Workflow definitions: validation and the conditions steps can carry. Pure.
import { AGENT_TYPES, type WorkflowDef } from '../config.js';
import { parseReview } from './review.js';

export const CONDITIONS = ['has_issues', 'no_issues', 'review_approved'] as const;
export type Condition = (typeof CONDITIONS)[number];

export class WorkflowDefinitionError extends Error {
  override name = 'WorkflowDefinitionError';
}

/** Index of the step a loop_to names: by output key first, then by agent name, then by number. */
export function loopTarget(def: WorkflowDef, loopTo: string): number {
  const byOutput = def.steps.findIndex((s) => s.output === loopTo);
  if (byOutput !== -1) return byOutput;
  const byAgent = def.steps.findIndex((s) => s.agent === loopTo);
  if (byAgent !== -1) return byAgent;
  return /^\d+$/.test(loopTo) && Number(loopTo) < def.steps.length ? Number(loopTo) : -1;
}

/** Throws WorkflowDefinitionError naming the step and the problem. */
export function validateWorkflow(name: string, def: WorkflowDef): void {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name))
    throw new WorkflowDefinitionError(`workflow name "${name}" may contain only letters, digits, "_" and "-"`);
  const produced = new Set<string>();
  def.steps.forEach((s, i) => {
    const where = `workflow ${name}, step ${i}`;
    if (!(AGENT_TYPES as readonly string[]).includes(s.agent))
      throw new WorkflowDefinitionError(`${where}: unknown agent "${s.agent}" (known: ${AGENT_TYPES.join(', ')})`);
    if (s.condition && !(CONDITIONS as readonly string[]).includes(s.condition)) {
      throw new WorkflowDefinitionError(`${where}: unknown condition "${s.condition}" (known: ${CONDITIONS.join(', ')})`);
    }
    if (s.input && !produced.has(s.input))
      throw new WorkflowDefinitionError(`${where}: input "${s.input}" is not the output of an earlier step`);
    if (s.loop_to !== undefined) {
      const t = loopTarget(def, s.loop_to);
      if (t === -1) throw new WorkflowDefinitionError(`${where}: loop_to "${s.loop_to}" names no step`);
      if (t >= i) throw new WorkflowDefinitionError(`${where}: loop_to "${s.loop_to}" must name an earlier step`);
    }
    if (s.output) produced.add(s.output);
  });
}

/** Evaluates a step condition against the text of the step's input (normally a review). */
export function evaluateCondition(condition: string, inputText: string): boolean {
  const review = parseReview(inputText);
  const blocking = review.issues.some((i) => i.severity === 'blocker' || i.severity === 'major');
  switch (condition) {
    case 'has_issues':
      return blocking;
    case 'no_issues':
      return !blocking;
    case 'review_approved':
      return review.approved;
    default:
      throw new WorkflowDefinitionError(`unknown condition "${condition}"`);
  }
}
