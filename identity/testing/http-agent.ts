import { createTlsFetch } from '../tls-fetch.ts';

interface Cookie {
  host: string;
  name: string;
  value: string;
  path: string;
}

/** A page the agent ended on. */
export interface AgentPage {
  url: URL;
  status: number;
  body: string;
  location?: URL;
}

/**
 * A tiny scripted "browser" for tests: keeps cookies (host + path), follows redirects, submits
 * forms. It drives the real broker and the real demo IdPs over HTTPS; the Chromium test covers
 * what a real browser adds.
 */
export function createHttpAgent(options: { ca: string; timeoutMs?: number }) {
  const fetchFn = createTlsFetch({ ca: options.ca, timeoutMs: options.timeoutMs ?? 10_000 });
  const jar = new Map<string, Cookie>();

  function store(url: URL, headers: Headers) {
    for (const line of headers.getSetCookie()) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = '/';
      let expired = false;
      for (const attr of attrs) {
        const [k = '', v = ''] = attr.trim().split('=');
        if (k.toLowerCase() === 'path') path = v;
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
        if (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now()) expired = true;
      }
      const key = `${url.host}|${name}|${path}`;
      if (expired) jar.delete(key);
      else jar.set(key, { host: url.host, name, value, path });
    }
  }

  function cookieHeader(url: URL): string {
    return [...jar.values()]
      .filter((c) => c.host === url.host && url.pathname.startsWith(c.path))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  async function request(url: URL, init: RequestInit = {}): Promise<AgentPage> {
    const headers = new Headers(init.headers);
    const cookies = cookieHeader(url);
    if (cookies) headers.set('cookie', cookies);
    const res = await fetchFn(url, { ...init, headers });
    store(url, res.headers);
    const location = res.headers.get('location');
    return {
      url,
      status: res.status,
      body: await res.text(),
      location: location ? new URL(location, url) : undefined,
    };
  }

  /** Follows redirects until a page is served or `stop(url)` says to stop before loading it. */
  async function follow(page: AgentPage, stop?: (url: URL) => boolean): Promise<AgentPage> {
    let current = page;
    for (
      let i = 0;
      i < 20 && current.location && current.status >= 300 && current.status < 400;
      i++
    ) {
      if (stop?.(current.location)) return current;
      current = await request(current.location);
    }
    return current;
  }

  return {
    jar,
    request,
    get: (url: string | URL, stop?: (url: URL) => boolean) =>
      request(new URL(url)).then((p) => follow(p, stop)),
    post: (url: string | URL, form: Record<string, string>, stop?: (url: URL) => boolean) =>
      request(new URL(url), { method: 'POST', body: new URLSearchParams(form) }).then((p) =>
        follow(p, stop),
      ),
    follow,
  };
}

/** The first form of a page: its absolute action URL and its hidden fields. */
export function parseForm(
  page: AgentPage,
  id?: string,
): { action: URL; fields: Record<string, string> } {
  const forms = [...page.body.matchAll(/<form([^>]*)>([\s\S]*?)<\/form>/g)];
  const form = forms.find((f) => !id || f[1]!.includes(`id="${id}"`)) ?? forms[0];
  if (!form) throw new Error(`no form on ${page.url.href} (status ${page.status})`);
  const action = /action="([^"]*)"/.exec(form[1]!)?.[1] ?? page.url.pathname;
  const fields: Record<string, string> = {};
  for (const input of form[2]!.matchAll(/<input([^>]*)>/g)) {
    const name = /name="([^"]*)"/.exec(input[1]!)?.[1];
    const value = /value="([^"]*)"/.exec(input[1]!)?.[1];
    if (name && value !== undefined) fields[name] = value.replaceAll('&amp;', '&');
  }
  return { action: new URL(action.replaceAll('&amp;', '&'), page.url), fields };
}
