import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {fitEpochsToBudget} from '../../../bench/quality.js'

describe('quality bench: fitting the config epochs to the time budget', () => {
  const stages = [
    {stage: 'autoencoder', epochs: 30, secondsPerEpoch: 20},
    {stage: 'operator', epochs: 25, secondsPerEpoch: 290},
    {stage: 'diff_residual', epochs: 8, secondsPerEpoch: 118},
    {stage: 'consistency_distill', epochs: 8, secondsPerEpoch: 140},
  ]
  const seconds = (plan: Record<string, number>, list = stages) => list.reduce((a, s) => a + plan[s.stage] * s.secondsPerEpoch, 0)

  it('reserves the autoencoder its share, shares the rest in proportion rounding up where it fits, and fills with the autoencoder', () => {
    const plan = fitEpochsToBudget(stages, 1800, 100)
    // Reserved: 180 s. The others share 1800 - 100 - 180 = 1520 s of 9314 s: factor 0.163, the
    // operator 4.08 -> 4, the correctors 1.31 -> 1 each (a second would not fit).
    assert.deepEqual({op: plan.operator, d: plan.diff_residual, c: plan.consistency_distill}, {op: 4, d: 1, c: 1})
    // The autoencoder takes the rest: (1700 - 1418) / 20 = 14 epochs.
    assert.equal(plan.autoencoder, 14)
    assert.ok(seconds(plan) + 100 <= 1800, `${seconds(plan)}`)
  })

  it('rounds up only what fits beside the reserve, and never beyond the budget', () => {
    // A slower operator: 1520 s / 10314 s, the operator at 3.7 epochs; a 4th (4 x 330 + 118 + 140
    // = 1578 s) does not fit in 1520 s, so it stays at 3 and the autoencoder takes the rest.
    const slower = stages.map((s) => (s.stage === 'operator' ? {...s, secondsPerEpoch: 330} : s))
    const plan = fitEpochsToBudget(slower, 1800, 100)
    assert.equal(plan.operator, 3)
    assert.equal(plan.autoencoder, Math.floor((1700 - (990 + 118 + 140)) / 20))
    assert.ok(seconds(plan, slower) + 100 <= 1800)
  })

  it('keeps a cheap autoencoder whole', () => {
    const cheap = [{...stages[0], epochs: 10}, ...stages.slice(1)]
    const plan = fitEpochsToBudget(cheap, 1800, 60)
    assert.equal(plan.autoencoder, 10)
    assert.ok(seconds(plan, cheap) + 60 <= 1800)
  })

  it('never raises the configured epochs, and trains every stage at least once', () => {
    assert.deepEqual(fitEpochsToBudget(stages, 1e6), {autoencoder: 30, operator: 25, diff_residual: 8, consistency_distill: 8})
    const tiny = fitEpochsToBudget(stages, 60, 50)
    for (const s of stages) assert.ok(tiny[s.stage] >= 1)
    assert.equal(tiny.operator, 1)
  })
})
