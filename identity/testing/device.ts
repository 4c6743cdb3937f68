import type { Harness } from './harness.ts';
import { createHttpAgent, parseForm, type AgentPage } from './http-agent.ts';
import { demoIdpLogin } from './sso.ts';

/** Walks the device pages as a person would: code, organisation, IdP login, confirm. */
export async function approveDevice(
  h: Pick<Harness, 'ca'>,
  verificationUri: string,
  userCode: string,
  choice: 'confirm' | 'abort',
  email = 'alice@acme.example',
) {
  const a = createHttpAgent({ ca: h.ca.cert });
  let page: AgentPage = await a.get(verificationUri);
  for (let step = 0; step < 10; step++) {
    if (page.body.includes('document.forms[0].submit()')) {
      // oidc-provider's self-submitting form (a browser runs its script).
      const form = parseForm(page);
      page = await a.post(form.action, form.fields);
    } else if (page.body.includes('op.deviceInputForm')) {
      const form = parseForm(page, 'op.deviceInputForm');
      page = await a.post(form.action, { ...form.fields, user_code: userCode });
    } else if (page.body.includes('op.deviceConfirmForm')) {
      const form = parseForm(page, 'op.deviceConfirmForm');
      const fields = choice === 'abort' ? { ...form.fields, abort: 'yes' } : form.fields;
      page = await a.post(form.action, fields);
    } else if (page.body.includes('name="email"')) {
      const action = /action="([^"]+)"/.exec(page.body)![1]!;
      page = await a.post(new URL(action, page.url), { email });
    } else if (page.body.includes('name="username"')) {
      page = await demoIdpLogin(a, page, email.split('@')[0]!, () => false);
    } else {
      return page;
    }
  }
  return page;
}
