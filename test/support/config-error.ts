import { strict as assert } from 'node:assert';
import { ConfigError } from '../../src/errors/index.js';

/** The ConfigError `fn` throws (a failed assertion when it throws nothing, or something else). */
export function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail('expected a ConfigError');
}

/** The ConfigError `promise` rejects with. */
export async function rejectionOf(promise: Promise<unknown>): Promise<ConfigError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail('expected a ConfigError');
}
