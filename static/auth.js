// Shared by the dashboard and the message board: the API token, asked for once per browser session
// (kept in sessionStorage, sent as a Bearer header, never put in a URL).
export const TOKEN_KEY = 'factory_token';

let pending = null;

/**
 * Shows the page's token form (#auth, #auth-form, #auth-token, #auth-error); concurrent callers share
 * one prompt. Resolves with the entered token once it was submitted.
 */
export function askToken(rejected, onShow = () => {}) {
  if (!pending) {
    pending = new Promise((resolve) => {
      const $ = (id) => document.getElementById(id);
      onShow();
      $('auth-error').hidden = !rejected;
      $('auth').hidden = false;
      $('auth-token').value = '';
      $('auth-token').focus();
      $('auth-form').onsubmit = (ev) => {
        ev.preventDefault();
        const token = $('auth-token').value.trim();
        sessionStorage.setItem(TOKEN_KEY, token);
        $('auth').hidden = true;
        pending = null;
        resolve(token);
      };
    });
  }
  return pending;
}
