import { nativeCalls } from './native.js';

/**
 * glibc keeps the pages freed after start-up (module loading, the optimising compiler's threads, a scrape's buffers)
 * as free chunks inside its arenas, where they still count in pgim's RSS. `malloc_trim` returns them to the kernel.
 * It walks the arenas' free lists only, so running it now and then costs next to nothing.
 */
export function trimMemoryPeriodically(everyMs = 30_000): () => void {
  const calls = nativeCalls();
  if (calls instanceof Error) return () => undefined;
  const timer = setInterval(() => calls.trimMemory(), everyMs).unref();
  return () => {
    clearInterval(timer);
  };
}
