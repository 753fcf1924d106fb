import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AppServices as Services } from '../services.js';
import { workflowDefSchema } from '../../config.js';
import type { WorkflowEngine } from '../../workflows/engine.js';
import type { HandoffRow, HandoffsRepo, WorkflowRow, WorkflowsRepo } from '../../db/repositories/workflows.js';
import { WorkflowDefinitionError, validateWorkflow } from '../../workflows/definition.js';
import { issueCounts, parseReview } from '../../workflows/review.js';
import { conflict, notFound } from '../../errors.js';
import { HttpError } from '../http-error.js';
import { parseInput } from '../validation.js';
import { checkRepo, idParams } from './tasks.js';

const WF_STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const;

const startFields = {
  title: z.string({ error: 'is required and must be a string' }).trim().min(1, 'must not be empty').max(500),
  description: z.string({ error: 'must be a string' }).max(100_000).default(''),
  repo: z.string({ error: 'must be a string' }).trim().max(200).default(''),
  plane_issue_id: z.string({ error: 'must be a string' }).max(100).default(''),
};
const createBody = z.object({
  workflow_name: z.string({ error: 'is required and must be a string' }).trim().min(1, 'must not be empty').max(64),
  definition: workflowDefSchema.optional(),
  ...startFields,
});

export interface WorkflowDeps {
  engine: WorkflowEngine;
  workflows: WorkflowsRepo;
  handoffs: HandoffsRepo;
}

export function handoffJson(h: HandoffRow) {
  return {
    id: h.id,
    from_task_id: h.from_task_id,
    to_task_id: h.to_task_id,
    workflow_id: h.workflow_id,
    output_type: h.output_type,
    content: h.content,
    summary: h.summary,
    created_at: h.created_at,
  };
}

export function workflowRoutes(deps: WorkflowDeps) {
  return async (app: FastifyInstance, s: Services): Promise<void> => {
    const json = async (wf: WorkflowRow) => {
      const steps = await deps.workflows.steps(wf.id);
      // Each step's task, in step order.
      const tasks = await Promise.all(steps.map(async (st) => (st.task_id ? s.tasks.get(st.task_id) : undefined)));
      let cost = 0;
      const stepJson = steps.map((st, i) => {
        const t = tasks[i];
        cost += t?.cost_usd ?? 0;
        const review = st.agent_type === 'reviewer' && st.status === 'completed' ? parseReview(st.output_data) : undefined;
        return {
          id: st.id,
          workflow_id: st.workflow_id,
          step_index: st.step_index,
          agent_type: st.agent_type,
          task_id: st.task_id,
          status: st.status,
          input_key: st.input_key,
          output_key: st.output_key,
          condition: st.condition,
          loop_to: st.loop_to,
          prompt_template: st.prompt_template,
          output_data: st.output_data,
          iteration: st.iteration,
          started_at: st.started_at,
          completed_at: st.completed_at,
          task: t ? { id: t.id, title: t.title, status: t.status, error: t.error, cost_usd: t.cost_usd, pr_url: t.pr_url } : null,
          review: review ? { approved: review.approved, summary: review.summary, counts: issueCounts(review) } : null,
        };
      });
      return {
        id: wf.id,
        name: wf.name,
        title: wf.title,
        description: wf.description,
        repo: wf.repo,
        status: wf.status,
        current_step: wf.current_step,
        iteration: wf.iteration,
        max_iterations: wf.max_iterations,
        plane_issue_id: wf.plane_issue_id,
        error: wf.error,
        created_at: wf.created_at,
        started_at: wf.started_at,
        completed_at: wf.completed_at,
        branch_name: wf.branch_name,
        pr_url: wf.pr_url,
        result: wf.result,
        cost_usd: cost,
        steps: stepJson,
      };
    };
    const getOr404 = async (id: number) => {
      const wf = await deps.workflows.get(id);
      if (!wf) throw notFound('Workflow');
      return wf;
    };
    const start = async (
      name: string,
      def: ReturnType<typeof workflowDefSchema.parse>,
      b: { title: string; description: string; repo: string; plane_issue_id: string },
    ) => {
      const { repo } = checkRepo(s, b.repo);
      try {
        validateWorkflow(name, def);
      } catch (err) {
        if (err instanceof WorkflowDefinitionError) throw new HttpError(400, 'invalid_input', `definition: ${err.message}`, 'definition');
        throw err;
      }
      return await deps.engine.start({ name, def, title: b.title, description: b.description, repo, plane_issue_id: b.plane_issue_id });
    };

    app.post('/api/workflows', async (req, reply) => {
      const b = parseInput(createBody, req.body, 'body');
      const def = b.definition ?? s.config.workflows[b.workflow_name];
      if (!def) {
        const known = Object.keys(s.config.workflows);
        throw new HttpError(
          400,
          'invalid_input',
          `Unknown workflow: '${b.workflow_name}'. Available: ${known.join(', ') || 'none'}`,
          'workflow_name',
        );
      }
      return reply.status(201).send(await json(await start(b.workflow_name, def, b)));
    });

    app.post('/api/workflows/code_review', async (req, reply) => {
      const b = parseInput(z.object(startFields), req.body, 'body');
      const def = s.config.workflows.code_review;
      if (!def)
        throw new HttpError(
          400,
          'not_configured',
          'code_review workflow is not configured. Add it to the workflows section of config.yml.',
        );
      return reply.status(201).send(await json(await start('code_review', def, b)));
    });

    app.get('/api/workflows', async (req) => {
      const q = parseInput(
        z.object({
          status: z.enum(WF_STATUSES, { error: `must be one of ${WF_STATUSES.join(', ')}` }).optional(),
          limit: z.coerce.number().int().min(1).max(500).default(100),
          offset: z.coerce.number().int().min(0).default(0),
        }),
        req.query,
        'query',
      );
      const list = await deps.workflows.list(q);
      // One after another: the list keeps its order and a long list does not hold every connection.
      const out = [];
      for (const wf of list) out.push(await json(wf));
      return out;
    });

    app.get('/api/workflows/:id', async (req) => json(await getOr404(parseInput(idParams, req.params, 'params').id)));

    app.post('/api/workflows/:id/cancel', async (req) => {
      const wf = await getOr404(parseInput(idParams, req.params, 'params').id);
      if (wf.status !== 'running' && wf.status !== 'pending') throw conflict(`Workflow is ${wf.status}, must be running`);
      await deps.engine.cancel(wf.id);
      return json(await getOr404(wf.id));
    });

    app.get('/api/workflows/:id/handoffs', async (req) => {
      const wf = await getOr404(parseInput(idParams, req.params, 'params').id);
      return (await deps.handoffs.forWorkflow(wf.id)).map(handoffJson);
    });

    app.post('/api/handoffs', async (req, reply) => {
      const b = parseInput(
        z.object({
          from_task_id: z.number({ error: 'is required and must be an integer' }).int().positive(),
          to_task_id: z.number({ error: 'must be an integer or null' }).int().positive().nullable().default(null),
          workflow_id: z.number({ error: 'must be an integer or null' }).int().positive().nullable().default(null),
          output_type: z
            .enum(['code_diff', 'review_comments', 'research_notes', 'test_results', 'general', 'error_report'], {
              error: 'must be one of code_diff, review_comments, research_notes, test_results, general, error_report',
            })
            .default('general'),
          content: z.string().max(50_000, 'must be at most 50000 characters').default(''),
          summary: z.string().max(2_000, 'must be at most 2000 characters').default(''),
        }),
        req.body,
        'body',
      );
      if (!(await s.tasks.get(b.from_task_id)))
        throw new HttpError(404, 'not_found', `Source task ${b.from_task_id} not found`, 'from_task_id');
      if (b.to_task_id !== null && !(await s.tasks.get(b.to_task_id)))
        throw new HttpError(404, 'not_found', `Target task ${b.to_task_id} not found`, 'to_task_id');
      if (b.workflow_id !== null && !(await deps.workflows.get(b.workflow_id)))
        throw new HttpError(404, 'not_found', `Workflow ${b.workflow_id} not found`, 'workflow_id');
      return reply.status(201).send(handoffJson(await deps.handoffs.create(b)));
    });

    app.get('/api/handoffs/:id', async (req) => {
      const h = await deps.handoffs.get(parseInput(idParams, req.params, 'params').id);
      if (!h) throw notFound('Handoff');
      return handoffJson(h);
    });

    app.get('/api/tasks/:id/handoffs', async (req) => {
      const { id } = parseInput(idParams, req.params, 'params');
      const q = parseInput(
        z.object({ direction: z.enum(['to', 'from'], { error: 'must be "to" or "from"' }).default('to') }),
        req.query,
        'query',
      );
      if (!(await s.tasks.get(id))) throw notFound('Task');
      return (await deps.handoffs.forTask(id, q.direction)).map(handoffJson);
    });
  };
}
