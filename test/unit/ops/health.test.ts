import assert from 'node:assert/strict'
import {describe, test} from 'node:test'

import {
  type MetricPoint, exitCodeFor, parseLog, rateCost, rateDiffusionLoss, rateGpuMemory, rateGpuUtil, rateGradNormDiff,
  rateGradNormOp, rateLossTrend, resolveThresholds, worst,
} from '../../../src/ops/index.js'

const cases = (f: (x: number) => string, table: Array<[number, string]>) => {
  for (const [x, want] of table) assert.equal(f(x), want, `${x} -> ${want}`)
}

describe('MON-001 ratings at every boundary', () => {
  test('GPU utilisation: 70-100 healthy, 50-70 warning, <50 critical', () => {
    cases(rateGpuUtil, [[100, 'healthy'], [70, 'healthy'], [69.9, 'warning'], [50, 'warning'], [49.9, 'critical'], [0, 'critical']])
  })
  test('GPU memory: <=90 healthy, 90-95 warning, >95 critical', () => {
    cases(rateGpuMemory, [[10, 'healthy'], [90, 'healthy'], [90.1, 'warning'], [95, 'warning'], [95.1, 'critical']])
  })
  test('diffusion loss: <0.01 healthy, 0.01-0.05 warning, >0.05 critical, NaN critical', () => {
    cases(rateDiffusionLoss, [[0.0099, 'healthy'], [0.01, 'warning'], [0.05, 'warning'], [0.0501, 'critical'], [Number.NaN, 'critical']])
  })
  test('grad norm (op): 0.01-0.2 healthy, 0.2-1.0 warning, >1.0 or <0.001 critical', () => {
    cases(rateGradNormOp, [[0.01, 'healthy'], [0.2, 'healthy'], [0.21, 'warning'], [1.0, 'warning'], [1.01, 'critical'], [0.0099, 'warning'], [0.001, 'warning'], [0.00099, 'critical'], [Number.NaN, 'critical']])
  })
  test('grad norm (diff): 0.05-0.5 healthy, 0.5-2.0 warning, >2.0 critical', () => {
    cases(rateGradNormDiff, [[0.05, 'healthy'], [0.5, 'healthy'], [0.51, 'warning'], [2.0, 'warning'], [2.01, 'critical'], [0.04, 'warning']])
  })
  test('cost vs estimate: <=120% healthy, 120-150 warning, >150 critical', () => {
    cases(rateCost, [[50, 'healthy'], [120, 'healthy'], [120.1, 'warning'], [150, 'warning'], [150.1, 'critical']])
  })
  test('thresholds from a config monitor section override the defaults', () => {
    const t = resolveThresholds({gpu_util_warning_below: 80, gpu_util_critical_below: 60, cost_critical_above_pct: 200})
    assert.equal(rateGpuUtil(75, t), 'warning')
    assert.equal(rateGpuUtil(55, t), 'critical')
    assert.equal(rateCost(180, t), 'warning')
    assert.equal(rateGpuMemory(96, t), 'critical', 'unset keys keep the runbook default')
  })
  test('operator loss trend: decreasing healthy, increasing critical, flat warning after 30 min', () => {
    const p = (loss: number, min: number | null = null): MetricPoint => ({stage: 'operator', epoch: null, epochs: null, loss, gradNorm: null, time: min === null ? null : min * 60_000})
    assert.equal(rateLossTrend([p(0.1), p(0.08), p(0.05)])?.rating, 'healthy')
    assert.equal(rateLossTrend([p(0.05), p(0.06), p(0.08)])?.trend, 'increasing')
    assert.equal(rateLossTrend([p(0.05), p(0.06), p(0.08)])?.rating, 'critical')
    assert.equal(rateLossTrend([p(0.1, 0), p(0.05, 5), p(0.05, 20), p(0.0501, 34)])?.rating, 'healthy', 'flat for 29 min')
    assert.equal(rateLossTrend([p(0.1, 0), p(0.05, 5), p(0.05, 20), p(0.0501, 35)])?.rating, 'warning', 'flat for 30 min')
    assert.equal(rateLossTrend([p(0.05), p(0.05), p(0.05)])?.rating, 'warning', 'flat for 3 points without times')
    assert.equal(rateLossTrend([p(0.05)]), null)
  })
  test('worst rating is the exit code: 0 healthy, 1 warning, 2 critical', () => {
    assert.equal(exitCodeFor(worst([])), 0)
    assert.equal(exitCodeFor(worst(['healthy', 'warning'])), 1)
    assert.equal(exitCodeFor(worst(['warning', 'critical', 'healthy'])), 2)
  })
})

describe('log tail parsing', () => {
  test('text and JSON training lines, stage/epoch, loss and grad norm', () => {
    const s = parseLog([
      '[ups 2025-11-28T10:00:00Z] onstart begins',
      'Training started: run_x',
      '[operator] epoch 1/25 loss=0.0500 val_loss=0.06 grad_norm=0.08 lr=1.0e-3',
      '{"time": "2025-11-28T10:10:00Z", "stage": "operator", "epoch": 2, "operator/loss": 0.04, "operator/grad_norm": 0.07}',
      '[diff_residual] epoch 3/8 loss=0.02 grad_norm=0.6',
    ])
    assert.equal(s.trainingStarted, true)
    assert.equal(s.stage, 'diff_residual')
    assert.deepEqual([s.epoch, s.epochs], [3, 8])
    assert.deepEqual(s.points.map((p) => [p.stage, p.loss, p.gradNorm]), [['operator', 0.05, 0.08], ['operator', 0.04, 0.07], ['diff_residual', 0.02, 0.6]])
    assert.equal(s.points[1].time, Date.parse('2025-11-28T10:10:00Z'))
    assert.deepEqual([s.tracebacks.length, s.nanLines.length, s.oomLines.length], [0, 0, 0])
  })
  test('Python and JS tracebacks, NaN, OOM, failure marker, onstart exit code', () => {
    const s = parseLog([
      'Traceback (most recent call last):',
      '  File "train.py", line 3, in <module>',
      '    main()',
      'RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB',
      'TypeError: Cannot read properties of undefined (reading \'shape\')',
      '    at encode (file:///workspace/ups/dist/training/models/autoencoder.js:41:17)',
      '    at async trainStage (file:///workspace/ups/dist/pipeline/run.js:88:5)',
      '[operator] epoch 4/25 loss=nan grad_norm=nan',
      'Training pipeline failed: stage operator',
      '[ups 2025-11-28T11:00:00Z] onstart finished with exit code 1',
    ])
    assert.deepEqual(s.tracebacks.map((t) => [t.kind, t.error]), [['python', 'RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB'], ['javascript', "TypeError: Cannot read properties of undefined (reading 'shape')"]])
    assert.equal(s.oomLines.length, 1)
    assert.equal(s.nanLines.length, 1)
    assert.equal(s.failureLines.length, 1)
    assert.equal(s.exitCode, 1)
  })
  test('words like "nano" or "finance" are not NaN; a plain "Error:" line without frames is not a traceback', () => {
    const s = parseLog(['installing nanoid for finance', 'Error: retrying download', 'npm ERR! code E404'])
    assert.deepEqual([s.nanLines.length, s.tracebacks.length], [0, 0])
  })
})
