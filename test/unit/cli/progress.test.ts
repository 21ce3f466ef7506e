import assert from 'node:assert/strict'
import {test} from 'node:test'

import {formatStepProgress, trainingProgress} from '../../../src/cli/progress.js'

const sink = (isTTY: boolean) => {
  const out: string[] = []
  return {out, stream: {isTTY, write: (s: string) => (out.push(s), true)} as unknown as NodeJS.WriteStream}
}

test('a step line says where the epoch is, its samples/s and the ETA', () => {
  const line = formatStepProgress({stage: 'autoencoder', epoch: 2, epochs: 10, step: 100, steps: 400, items: 6400, elapsedMs: 20_000})
  assert.equal(line, '[autoencoder] epoch 2/10 step 100/400 (25.0%) 320 samples/s ETA 1:00')
  assert.match(formatStepProgress({stage: 'operator', epoch: 1, epochs: 1, step: 1, steps: 50_000, items: 8, elapsedMs: 3000}), /2\.67 samples\/s ETA 41:39:57/)
})

test('without a terminal, a plain line at most every interval and none for the last step', () => {
  let now = 0
  const {out, stream} = sink(false)
  const report = trainingProgress(stream, () => now, {intervalMs: 30_000})
  for (let step = 1; step <= 10; step++) {
    now += 10_000
    report({stage: 'operator', epoch: 1, epochs: 3, step, steps: 10, items: step * 16, elapsedMs: now})
  }
  // The interval starts at step 1 (10 s): steps at 40 s and 70 s; step 10 (100 s) ends the epoch,
  // whose summary comes from the logger.
  assert.deepEqual(out.map((l) => l.match(/step (\d+)\//)![1]), ['4', '7'])
  assert.ok(out.every((l) => l.endsWith('\n') && !l.includes('\r')))
})

test('on a terminal, one redrawn line, cleared at the end of the epoch', () => {
  let now = 0
  const {out, stream} = sink(true)
  const report = trainingProgress(stream, () => now, {redrawMs: 200})
  for (let step = 1; step <= 5; step++) {
    now += 300
    report({stage: 'autoencoder', epoch: 1, epochs: 1, step, steps: 5, items: step, elapsedMs: now})
  }
  assert.equal(out.length, 5)
  assert.ok(out.slice(0, 4).every((l) => l.startsWith('\r[autoencoder] epoch 1/1 step')))
  assert.equal(out[4], '\r\x1b[K')
})
