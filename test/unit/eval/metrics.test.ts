import assert from 'node:assert/strict'
import {test} from 'node:test'

import {dftMagnitudes1d, fieldMetrics, rolloutMetrics} from '../../../src/training/metrics.js'

const close = (a: number, b: number, tol = 1e-6, what = '') => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} != ${b}`)

test('hand-computed RMSE, nRMSE, MAE, max, cRMSE, bRMSE on a 4-point field', () => {
  const truth = Float32Array.from([1, 2, 3, 2])
  const pred = Float32Array.from([1, 2, 3, 4]) // error only at the last (boundary) point
  const m = fieldMetrics(pred, truth, [1, 4, 1])
  close(m.rmse, 1, 1e-9, 'rmse') // sqrt(4 / 4)
  close(m.nrmse, 2 / Math.sqrt(18), 1e-9, 'nrmse') // ||e|| / ||u|| = 2 / sqrt(1 + 4 + 9 + 4)
  close(m.mae, 0.5, 1e-9, 'mae')
  close(m.maxError, 2, 1e-9, 'max')
  close(m.crmse, 0.5, 1e-9, 'crmse') // |10 - 8| / 4
  close(m.brmse, Math.SQRT2, 1e-9, 'brmse') // sqrt((0 + 4) / 2)
  assert.equal(m.count, 1)
})

test('a constant shift is all conserved-quantity error and all in frequency 0', () => {
  const n = 16
  const truth = Float32Array.from({length: n}, (_, i) => Math.sin((2 * Math.PI * i) / n) + 2)
  const pred = truth.map((v) => v + 0.25)
  const m = fieldMetrics(pred, truth, [1, n, 1])
  close(m.crmse, 0.25, 1e-6, 'crmse')
  close(m.rmse, 0.25, 1e-6, 'rmse')
  close(m.brmse, 0.25, 1e-6, 'brmse')
  close(m.spectrum[0], 0.25, 1e-6, 'mode 0')
  close(m.frmse.low, 0.25 / 4, 1e-6, 'low band = mean over modes 0..3')
  close(m.frmse.mid, 0, 1e-6, 'mid')
  close(m.frmse.high, 0, 1e-6, 'high')
  assert.equal(m.spectrum.length, n / 2 + 1)
})

test('a pure-frequency error lands in its PDEBench band only', () => {
  const n = 64
  const a = 0.8
  const truth = new Float32Array(n)
  for (const [k, band, modes] of [[2, 'low', 4], [6, 'mid', 8], [20, 'high', 21]] as const) {
    const pred = Float32Array.from({length: n}, (_, x) => a * Math.cos((2 * Math.PI * k * x) / n))
    const m = fieldMetrics(pred, truth, [1, n, 1])
    // |DFT_k| of a*cos = a*n/2, so |DFT_k| / n = a/2, averaged over the band's modes.
    for (const b of ['low', 'mid', 'high'] as const) close(m.frmse[b], b === band ? a / 2 / modes : 0, 1e-5, `k=${k} ${b}`)
    close(m.spectrum[k], a / 2, 1e-5, `spectrum at ${k}`)
    assert.ok(m.crmse < 1e-6)
  }
})

test('DFT magnitudes match a direct sum at n/2 and 0', () => {
  const e = Float64Array.from([1, -1, 1, -1, 1, -1])
  const mags = dftMagnitudes1d(e)
  close(mags[3], 6, 1e-12, 'Nyquist')
  close(mags[0], 0, 1e-12, 'mean')
  close(mags[1], 0, 1e-12, 'k=1')
})

test('boundary-only error: bRMSE sees it, interior error does not', () => {
  const n = 10
  const truth = new Float32Array(n).fill(1)
  const edge = Float32Array.from(truth, (v, i) => (i === 0 || i === n - 1 ? v + 3 : v))
  const m = fieldMetrics(edge, truth, [1, n, 1])
  close(m.brmse, 3, 1e-9, 'brmse')
  close(m.rmse, Math.sqrt((2 * 9) / n), 1e-9, 'rmse')
  const inner = Float32Array.from(truth, (v, i) => (i === 4 ? v + 3 : v))
  assert.equal(fieldMetrics(inner, truth, [1, n, 1]).brmse, 0)
  // 2-D: the four edges of a 4x4 grid; an interior error stays invisible to bRMSE.
  const t2 = new Float32Array(16).fill(2)
  const p2 = Float32Array.from(t2, (v, j) => (j === 5 ? v + 1 : v))
  const m2 = fieldMetrics(p2, t2, [1, 4, 4, 1])
  assert.equal(m2.brmse, 0)
  close(m2.rmse, 1 / 4, 1e-9, '2-D rmse')
  const all = t2.map((v) => v + 1)
  close(fieldMetrics(all, t2, [1, 4, 4, 1]).brmse, 1, 1e-9, '2-D edges')
  close(fieldMetrics(all, t2, [1, 4, 4, 1]).spectrum[0], 1, 1e-6, '2-D shell 0')
})

test('metrics are per sample and per channel, then averaged', () => {
  // sample 0: error 1 on a field of norm 2 (nRMSE 0.5); sample 1: exact. Two channels, channel 1 exact.
  const truth = Float32Array.from([1, 5, 1, 5, 1, 5, 1, 5]) // [2, 2, 2]: sample, x, channel
  const pred = Float32Array.from(truth)
  pred[0] += 1 // sample 0, x 0, channel 0
  const m = fieldMetrics(pred, truth, [2, 2, 2])
  assert.equal(m.count, 4)
  close(m.nrmse, 1 / Math.SQRT2 / 4, 1e-9, 'nrmse') // only one of four (sample, channel) pairs is off: 1/sqrt(2)
  close(m.maxError, 1, 1e-9, 'max')
})

test('rollout metrics per step and overall', () => {
  // 1 trajectory, 3 steps, 2 points; the error grows 0, 1, 2 at one point.
  const truth = Float32Array.from([1, 1, 1, 1, 1, 1])
  const pred = Float32Array.from([1, 1, 2, 1, 3, 1])
  const r = rolloutMetrics(pred, truth, [1, 3, 2, 1], {spatialDims: 1})
  const norm = Math.SQRT2
  assert.deepEqual(r.nrmsePerStep.map((v) => Number(v.toFixed(9))), [0, 1 / norm, 2 / norm].map((v) => Number(v.toFixed(9))))
  close(r.overall.nrmse, (0 + 1 / norm + 2 / norm) / 3, 1e-9, 'overall')
  assert.equal(r.overall.count, 3)
})

test('shape mismatches are errors, NaN propagates into max error', () => {
  assert.throws(() => fieldMetrics(new Float32Array(3), new Float32Array(4), [1, 4, 1]), /holds 4 values/)
  const m = fieldMetrics(Float32Array.from([Number.NaN, 0]), Float32Array.from([0, 0]), [1, 2, 1])
  assert.ok(Number.isNaN(m.maxError))
  assert.ok(Number.isNaN(m.rmse))
})
