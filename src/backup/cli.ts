/** `pgim backup`: asks the running instance (files mode) to take a base backup now, and waits for the outcome. */
export async function backupCommand(options: { name: string | undefined; url: string | undefined }): Promise<number> {
  const port = process.env.PGIM_STATUS_PORT ?? '8000';
  const base = (options.url ?? `http://127.0.0.1:${port}`).replace(/\/+$/, '');
  const query = options.name === undefined ? '' : `?name=${encodeURIComponent(options.name)}`;
  let response: Awaited<ReturnType<typeof fetch>>;
  try {
    response = await fetch(`${base}/pg/backup${query}`, { method: 'POST' });
  } catch (err) {
    process.stderr.write(`pgim backup: cannot reach ${base}: ${(err as Error).message}\n`);
    return 1;
  }
  const body = await response.text();
  process.stdout.write(body.endsWith('\n') ? body : `${body}\n`);
  return response.ok ? 0 : 1;
}
