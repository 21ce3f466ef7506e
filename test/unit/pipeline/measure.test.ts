import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {loadConfig, resolveStage} from '../../../src/config/index.js'
import type {DataShape} from '../../../src/pipeline/estimate-math.js'
import {measureModels, TIMED_STEPS, WARMUP_STEPS, WARMUP_WINDOW} from '../../../src/pipeline/measure.js'
import {tempDir} from '../../helpers.js'
import {TINY_CONFIG} from './fake-steps.js'

/** A clock that advances `msPerCall` each time it is read: every step then takes msPerCall. */
const tickingClock = (msPerCall: number) => {
  let t = 0
  return () => (t += msPerCall)
}

async function operatorOnly(t: import('node:test').TestContext) {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'c.yaml'), TINY_CONFIG.replace('autoencoder: {epochs: 1}', 'autoencoder: {epochs: 0}'))
  return (await loadConfig(join(dir, 'c.yaml'))).config
}

const shape = (trainSamples: number): DataShape => ({trainSamples, valSamples: 1, evalSamples: 1, frames: 5, grid: [16], channels: 1, source: 'config'})

describe('measureModels warm-up', () => {
  it('keeps warming up past a settled window until the steps span minSpanMs', async (t) => {
    const config = await operatorOnly(t)
    // Constant 5 ms steps settle at once; 100 ms of span takes 20 steps, and the settled check needs 2 windows.
    const r = await measureModels(config, shape(200), {measure: true, backend: 'cpu', now: tickingClock(5), minSpanMs: 100, workersOverride: '1'})
    const s = r.stages[0]
    assert.equal(s.stage, 'operator')
    assert.equal(s.warmupSteps, WARMUP_STEPS + 2 * WARMUP_WINDOW)
    const long = await measureModels(config, shape(200), {measure: true, backend: 'cpu', now: tickingClock(5), minSpanMs: 200, workersOverride: '1'})
    assert.equal(long.stages[0].warmupSteps, 40, 'runs until 40 x 5 ms = 200 ms')
    assert.equal(long.stages[0].measuredMs, 5)
    assert.equal(long.stages[0].warmupExtraMs, 0, 'a flat curve costs nothing extra')
  })

  it('never warms up for more steps than the stage trains', async (t) => {
    const config = await operatorOnly(t)
    const batch = resolveStage(config, 'operator').batch_size
    assert.ok(batch >= 8)
    // 2 samples x 4 pairs = 8 pairs: 1 step an epoch, 2 epochs: 2 steps in all.
    const r = await measureModels(config, shape(2), {measure: true, backend: 'cpu', now: tickingClock(5), minSpanMs: 10_000, workersOverride: '1'})
    assert.equal(r.stages[0].warmupSteps, WARMUP_STEPS)
    assert.equal(r.stages[0].stepMs.length, WARMUP_STEPS + TIMED_STEPS)
    // 60 samples x 4 pairs, 2 epochs: warm-up stops TIMED_STEPS short of the stage's steps.
    const big = await measureModels(config, shape(60), {measure: true, backend: 'cpu', now: tickingClock(5), minSpanMs: 10_000, workersOverride: '1'})
    const steps = 2 * Math.ceil((60 * 4) / batch)
    assert.ok(steps - TIMED_STEPS > WARMUP_STEPS)
    assert.equal(big.stages[0].warmupSteps, steps - TIMED_STEPS)
  })
})
