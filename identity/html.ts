import type { IncomingMessage, ServerResponse } from 'node:http';

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

/** A complete, accessible page: language, title, one main landmark, no scripts. */
export function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#111}
label{display:block;margin-top:1rem;font-weight:600}
input,select,button{font:inherit;padding:.5rem;margin-top:.25rem;width:100%;box-sizing:border-box}
button{margin-top:1rem;background:#1d4ed8;color:#fff;border:0;border-radius:4px;cursor:pointer}
button:focus,input:focus,select:focus{outline:3px solid #f59e0b}
.error{border-left:4px solid #b91c1c;padding:.5rem 1rem;background:#fef2f2}
</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>`;
}

/** Sends an HTML page with headers that stop caching, framing and script execution. */
export function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'x-frame-options': 'DENY',
    'content-security-policy':
      "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    'referrer-policy': 'no-referrer',
  });
  res.end(html);
}

/** Reads an `application/x-www-form-urlencoded` body (bounded to 16 KiB). */
export async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 16 * 1024) throw new Error('form body too large');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}
