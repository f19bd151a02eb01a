import { setFlagsFromString } from 'node:v8';

/**
 * Keeps V8's young generation at its initial size (2 MB: two 1 MB semi-spaces). V8 doubles it, up to 32 MB in Node
 * 20, whenever many young objects survive a scavenge, as start-up and a metrics collection over many databases make
 * them, and shrinks it only once the process has idled for a while: pgim's RSS was 15-25 MB higher, or not,
 * depending on when it was read (bench S1). Objects that outlive the young generation are promoted, and the old
 * generation is sized to what is live.
 *
 * A growth factor of 1 means no growth; V8 reads it at each growth but raises a command-line value below 2 to 2, so
 * it is set here, at run time, before the rest of pgim loads. Not `--max-semi-space-size`: any heap-size flag on the
 * command line costs every pgim command ~10 ms of CPU at start (Node's start-up snapshot is not used then).
 */
export function keepYoungGenerationSmall(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}

keepYoungGenerationSmall();
