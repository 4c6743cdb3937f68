import { escapeHtml, page } from './html.ts';
import type { OrganisationConfig } from './options.ts';

/** The organisation picker: choose from a list or type an email (home-realm discovery). */
export function chooseOrganisationPage(
  uid: string,
  orgs: readonly OrganisationConfig[],
  error?: string,
): string {
  const options = orgs
    .map((o) => `<option value="${escapeHtml(o.id)}">${escapeHtml(o.displayName)}</option>`)
    .join('\n');
  return page(
    'Sign in to Bulwark',
    `<h1>Sign in to Bulwark</h1>
${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/login/${escapeHtml(uid)}">
<label for="email">Work email</label>
<input id="email" name="email" type="email" autocomplete="email" aria-describedby="email-help">
<p id="email-help">We send you to your organisation's sign-in page.</p>
<button type="submit">Continue with email</button>
</form>
<form method="post" action="/login/${escapeHtml(uid)}">
<label for="org">Or choose your organisation</label>
<select id="org" name="org" required>
${options}
</select>
<button type="submit">Continue</button>
</form>`,
  );
}

/** A clear error page: what happened and what to do next. Never includes a cause or a token. */
export function errorPage(title: string, what: string, next: string): string {
  return page(
    title,
    `<h1>${escapeHtml(title)}</h1>
<p class="error" role="alert">${escapeHtml(what)}</p>
<p>${escapeHtml(next)}</p>`,
  );
}

/** The partner IdP said no: explain, and offer the way back (the client gets `access_denied`). */
export function upstreamRefusedPage(uid: string, orgName: string): string {
  return page(
    'Sign-in refused',
    `<h1>Sign-in refused</h1>
<p class="error" role="alert">${escapeHtml(orgName)} refused the sign-in, so Bulwark cannot let you in.</p>
<p>If you think you should have access, ask your organisation's IT support.</p>
<form method="post" action="/login/${escapeHtml(uid)}/abort">
<button type="submit">Return to the application</button>
</form>`,
  );
}
