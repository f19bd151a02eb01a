import express from 'express';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { InstanceState } from '../instance/state.js';

/**
 * The :9187 registry: CNPG's `cnpg_collector_up` (1 while PostgreSQL accepts connections), Node process metrics, and
 * pgim's restart counter. The full CNPG collector set lands with the metrics issue.
 */
export function createMetricsApp(state: InstanceState): express.Express {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  new Gauge({
    name: 'cnpg_collector_up',
    help: '1 if PostgreSQL is up, 0 otherwise.',
    labelNames: ['cluster'],
    registers: [registry],
    collect() {
      this.set({ cluster: state.clusterName }, state.accepting ? 1 : 0);
    },
  });
  let reported = 0;
  new Counter({
    name: 'pgim_postmaster_restarts_total',
    help: 'Unexpected postmaster exits followed by an in-process restart.',
    registers: [registry],
    collect() {
      this.inc(state.restartCount - reported);
      reported = state.restartCount;
    },
  });
  const app = express();
  app.disable('x-powered-by');
  app.get('/metrics', async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  });
  app.use((_req, res) => {
    res.status(404).type('text/plain').send('not found\n');
  });
  return app;
}
