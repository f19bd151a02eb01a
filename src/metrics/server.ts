import express from 'express';
import type { Collector } from './collector.js';
import type { MetricsCache } from './cache.js';

/**
 * `/metrics` on :9187: the built-in families (prom-client, Node process metrics included) plus the cached query
 * families. A scrape runs no SQL (unless `metricsQueriesTTL` is 0), so any number of scrapers cost the same.
 */
export function createMetricsApp(collector: Collector, cache: MetricsCache): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.all('/metrics', async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.set('Allow', 'GET, HEAD').status(405).type('text/plain').send('method not allowed\n');
      return;
    }
    const [builtins, queries] = await Promise.all([collector.registry.metrics(), cache.snapshotBytes()]);
    // Two writes, no concatenation: the cached part can be megabytes (1,000 databases, per-table queries), and a
    // cached scrape should cost what the built-in families cost, whatever its size.
    res.status(200).type(collector.registry.contentType);
    res.setHeader('Content-Length', Buffer.byteLength(builtins) + queries.length);
    res.write(builtins);
    res.end(queries);
  });
  app.use((_req, res) => {
    res.status(404).type('text/plain').send('not found\n');
  });
  return app;
}
