import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {fitEpochsToBudget} from '../../../bench/quality.js'

describe('quality bench: fitting the config epochs to the time budget', () => {
  const stages = [
    {stage: 'autoencoder', epochs: 10, secondsPerEpoch: 13},
    {stage: 'operator', epochs: 25, secondsPerEpoch: 220},
    {stage: 'diff_residual', epochs: 8, secondsPerEpoch: 80},
    {stage: 'consistency_distill', epochs: 8, secondsPerEpoch: 90},
  ]

  it('keeps a cheap stage whole and shares the rest of the budget in proportion', () => {
    const plan = fitEpochsToBudget(stages, 1800, 60)
    // autoencoder: 130 s <= 20% of 1800 s, kept. Left: 1800 - 60 - 130 = 1610 s of 6860 s.
    assert.equal(plan.autoencoder, 10)
    assert.equal(plan.operator, Math.floor(25 * (1610 / 6860)))
    assert.equal(plan.diff_residual, Math.floor(8 * (1610 / 6860)))
    const seconds = stages.reduce((a, s) => a + plan[s.stage] * s.secondsPerEpoch, 0)
    assert.ok(seconds + 60 <= 1800, `${seconds}`)
  })

  it('never raises the configured epochs, and trains every stage at least once', () => {
    assert.deepEqual(fitEpochsToBudget(stages, 1e6), {autoencoder: 10, operator: 25, diff_residual: 8, consistency_distill: 8})
    const tiny = fitEpochsToBudget(stages, 60, 50)
    for (const s of stages) assert.ok(tiny[s.stage] >= 1)
    assert.equal(tiny.operator, 1)
  })
})
