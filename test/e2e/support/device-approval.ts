import {
  createHttpAgent,
  parseForm,
  type AgentPage,
} from '../../../identity/testing/http-agent.ts';

/**
 * Plays the person at the browser for `bulwark login`: opens the verification URL, enters the
 * code, picks the organisation by email, signs in at the demo partner IdP with the password
 * `bulwark up` generated, and confirms. Returns the last page.
 */
export async function approveDeviceLogin(options: {
  ca: string;
  verificationUri: string;
  userCode: string;
  email: string;
  password: string;
}): Promise<AgentPage> {
  const agent = createHttpAgent({ ca: options.ca });
  let page = await agent.get(options.verificationUri);
  for (let step = 0; step < 12; step++) {
    if (page.body.includes('document.forms[0].submit()')) {
      const form = parseForm(page);
      page = await agent.post(form.action, form.fields);
    } else if (page.body.includes('op.deviceInputForm')) {
      const form = parseForm(page, 'op.deviceInputForm');
      page = await agent.post(form.action, { ...form.fields, user_code: options.userCode });
    } else if (page.body.includes('op.deviceConfirmForm')) {
      const form = parseForm(page, 'op.deviceConfirmForm');
      page = await agent.post(form.action, form.fields);
    } else if (page.body.includes('name="email"')) {
      const action = /action="([^"]+)"/.exec(page.body)![1]!;
      page = await agent.post(new URL(action, page.url), { email: options.email });
    } else if (page.body.includes('name="username"')) {
      const form = parseForm(page);
      page = await agent.post(form.action, {
        ...form.fields,
        username: options.email.split('@')[0]!,
        password: options.password,
      });
    } else {
      return page;
    }
  }
  return page;
}
