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
    const [builtins, queries] = await Promise.all([collector.registry.metrics(), cache.snapshot()]);
    res.type(collector.registry.contentType).send(builtins + queries);
  });
  app.use((_req, res) => {
    res.status(404).type('text/plain').send('not found\n');
  });
  return app;
}
