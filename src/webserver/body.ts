import type { Request, Response } from 'express';
import type { z } from 'zod';

/** CNPG's error envelope: `{"error":{"code":...,"message":...}}`. */
export function sendError(res: Response, status: number, code: string, message: string): void {
  res.status(status).json({ error: { code, message } });
}

export class BodyError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Bodies of the operator endpoints are a few hundred bytes; anything near this is not one. */
export const maxBodyBytes = 64 * 1024;

/** Keys that would reach an object's prototype if the parsed value were ever merged into another object. */
const forbiddenKeys = new Set(['__proto__', 'constructor', 'prototype']);

async function readCapped(req: Request, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > limit) throw new BodyError(413, 'REQUEST_TOO_LARGE', `request body exceeds ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    // An endless chunked body stops here: nothing more is buffered and the connection is closed after the reply.
    if (size > limit) throw new BodyError(413, 'REQUEST_TOO_LARGE', `request body exceeds ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * Reads a JSON object body into a schema-checked value: size-capped, `application/json` only, no `__proto__`,
 * `constructor` or `prototype` keys at any depth, unknown fields refused. The result is a fresh object built by the
 * schema, never the parsed input merged into something live.
 */
export async function readJsonBody<T>(req: Request, schema: z.ZodType<T>, limit = maxBodyBytes, options: { contentTypeOptional?: boolean } = {}): Promise<T> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  // CNPG's backup client sends PUT /pg/mode/backup without a Content-Type: there, a missing one is accepted.
  const missingAllowed = options.contentTypeOptional === true && type === '';
  if (type !== 'application/json' && !missingAllowed) throw new BodyError(400, 'FAILED_TO_PARSE_REQUEST', 'Content-Type must be application/json');
  const bytes = await readCapped(req, limit);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes), (key, value: unknown) => {
      if (forbiddenKeys.has(key)) throw new BodyError(400, 'FAILED_TO_PARSE_REQUEST', `forbidden key "${key}"`);
      return value;
    });
  } catch (err) {
    if (err instanceof BodyError) throw err;
    throw new BodyError(400, 'FAILED_TO_PARSE_REQUEST', 'the body is not valid JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new BodyError(400, 'FAILED_TO_PARSE_REQUEST', 'the body must be a JSON object');
  }
  const result = schema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.map(String).join('.') ?? '';
    throw new BodyError(400, 'FAILED_TO_PARSE_REQUEST', `${where === '' ? 'body' : where}: ${issue?.message ?? 'invalid'}`);
  }
  return result.data;
}

/** Replies to a BodyError; a 413 also closes the connection so the rest of the body is never read. */
export function sendBodyError(res: Response, err: BodyError): void {
  if (err.status === 413) res.set('Connection', 'close');
  sendError(res, err.status, err.code, err.message);
}
