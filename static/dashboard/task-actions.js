// What the buttons and the answer form of the task page do: run a queued task, cancel it, send an
// answer to the agent's question. Each renders the task the API returns.
import { state } from './state.js';
import { $ } from './dom.js';
import { showError, showNotice } from './notices.js';
import { api } from './api.js';
import { renderTask } from './task-page.js';

export async function cancelTask() {
  const t = state.task;
  if (!t) return;
  const gen = state.gen;
  try {
    const updated = await api(`/api/tasks/${t.id}/cancel`, { method: 'POST', body: {} });
    if (gen === state.gen) {
      renderTask(updated);
      showNotice(`Task #${t.id} is ${updated.status}.`);
    }
  } catch (err) {
    if (gen === state.gen) showError(`Could not cancel: ${err.message}`);
  }
}

export async function runTask() {
  const t = state.task;
  if (!t) return;
  const gen = state.gen;
  $('t-run').disabled = true;
  try {
    const updated = await api(`/api/tasks/${t.id}/run`, { method: 'POST', body: {} });
    if (gen === state.gen) renderTask(updated);
  } catch (err) {
    if (gen === state.gen) showError(`Could not start the task: ${err.message}`);
  } finally {
    $('t-run').disabled = false;
  }
}

export async function sendAnswer(ev) {
  ev.preventDefault();
  const t = state.task;
  const answer = $('t-answer').value.trim();
  if (!t || !answer) return;
  const gen = state.gen;
  $('t-answer-send').disabled = true;
  try {
    const updated = await api(`/api/tasks/${t.id}/answer`, { method: 'POST', body: { answer } });
    if (gen !== state.gen) return;
    renderTask(updated);
    showNotice('Answer sent; the agent resumes.');
  } catch (err) {
    if (gen === state.gen) showError(`Could not send the answer: ${err.message}`);
  } finally {
    $('t-answer-send').disabled = false;
  }
}
