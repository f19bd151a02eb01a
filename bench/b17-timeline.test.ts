import { strict as assert } from 'node:assert';
import { segmentTimeline } from './benchmarks/b17-archive.js';

describe("B17: where each segment's time went (the daemon's trace joined with the watched .ready files)", () => {
  it('measures ready -> upload start -> upload end -> archived per segment, and counts the calls that needed Node', () => {
    const trace = [
      { t: 1_010, wal: 'A', event: 'ready-seen' },
      { t: 1_020, wal: 'A', event: 'upload-start' },
      { t: 1_220, wal: 'A', event: 'upload-end' },
      { t: 1_225, wal: 'A', event: 'marker' },
      { t: 2_030, wal: 'B', event: 'upload-start' },
      { t: 2_530, wal: 'B', event: 'upload-end' },
      { t: 2_600, wal: 'B', event: 'asked' },
      { t: 2_601, wal: 'B', event: 'answered' },
      // A segment of another phase, and one traced twice (a retried upload): the first of each event counts.
      { t: 9_000, wal: 'C', event: 'upload-start' },
      { t: 1_300, wal: 'A', event: 'upload-start' },
    ].map((line) => JSON.stringify(line)).join('\n');
    const timeline = segmentTimeline(
      [
        { name: 'A', readyAt: 1_000, archivedAt: 1_250 },
        { name: 'B', readyAt: 2_000, archivedAt: 2_620 },
        { name: 'D', readyAt: 3_000, archivedAt: 3_100 },
      ],
      `${trace}\n`,
    );
    assert.deepEqual(timeline, { readyToUpload: [20, 30], upload: [200, 500], uploadToArchived: [30, 90], asked: 1, traced: 2 });
  });
});
