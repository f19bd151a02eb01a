import type pg from 'pg';

let driver: Promise<typeof pg> | undefined;

/**
 * node-postgres, loaded on first use: pgim starts PostgreSQL before it needs a session, so the driver loads while
 * the postmaster starts instead of delaying the start.
 */
export async function pgDriver(): Promise<typeof pg> {
  driver ??= import('pg').then((module) => module.default);
  return driver;
}

export interface LocalConnection {
  socketDir: string;
  port: number;
}

/** `"name"` with embedded quotes doubled. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A standard-conforming string literal. */
export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * A superuser session over the Unix socket (peer auth through the `local` map), with the same pinned session
 * settings CNPG uses, so a user's search_path or datestyle can never change what pgim's SQL means.
 */
export function connectLocal(target: LocalConnection, database = 'postgres', timeoutMs = 5000): Promise<pg.Client> {
  return connectSocket(target, { user: 'postgres', database, applicationName: 'pgim', timeoutMs, settings: '-c synchronous_commit=local' });
}

export interface SocketSession {
  user: string;
  database: string;
  applicationName: string;
  timeoutMs: number;
  /** More `-c name=value` settings on top of the pinned ones. */
  settings: string;
}

/** A peer-authenticated session over the Unix socket with search_path, datestyle and encoding pinned. */
export async function connectSocket(target: LocalConnection, session: SocketSession): Promise<pg.Client> {
  const { Client } = await pgDriver();
  const client = new Client({
    host: target.socketDir,
    port: target.port,
    user: session.user,
    database: session.database,
    application_name: session.applicationName,
    connectionTimeoutMillis: session.timeoutMs,
    options: `-c search_path=pg_catalog,public,pg_temp -c datestyle=ISO -c client_encoding=UTF8 ${session.settings}`,
  });
  // A server that goes away mid-session emits 'error'; the caller sees it on its next query instead.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}

export async function withLocalClient<T>(target: LocalConnection, fn: (client: pg.Client) => Promise<T>, database = 'postgres'): Promise<T> {
  const client = await connectLocal(target, database);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * A session as `cnpg_metrics_exporter` over the Unix socket (peer auth through the `cnpg_metrics_exporter` map),
 * with the settings pinned so a user's defaults cannot change what a monitoring query means.
 */
export function connectMonitor(target: LocalConnection, database: string, timeoutMs: number): Promise<pg.Client> {
  return connectSocket(target, {
    user: 'cnpg_metrics_exporter',
    database,
    applicationName: 'cnpg_metrics_exporter',
    timeoutMs,
    settings: '-c default_transaction_read_only=on',
  });
}
