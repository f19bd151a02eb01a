/**
 * Wraps `run` so that runs never overlap: a call while one runs asks for one more run after it (a burst of calls
 * becomes one), and every call resolves once a run that started after it has finished. `run` must not reject.
 */
export function serialised(run: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  const pending = { again: false };
  /** Whether calls arrived during the last run (and forgets them: one more run covers them all). */
  const takeAgain = (): boolean => {
    const again = pending.again;
    pending.again = false;
    return again;
  };
  const loop = async (): Promise<void> => {
    do await run();
    while (takeAgain());
  };
  return () => {
    if (running) {
      pending.again = true;
      return running;
    }
    running = loop().finally(() => {
      running = undefined;
    });
    return running;
  };
}
