// Its own module, without start-checks' imports: the CLI's entry names it, and a `pgim switchover` must not load
// the logger to start.

/**
 * A start that a restart cannot cure: pgim ends with `exitCode` and this message at error level, instead of
 * restarting postgres in a loop. The message says what is wrong and what to do; never to delete a cluster.
 */
export class CannotStartError extends Error {
  override readonly name: string = 'CannotStartError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}
