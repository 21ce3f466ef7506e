import assert from 'node:assert/strict'
import {test} from 'node:test'

import {choleskyInPlace, choleskySolveInPlace, improvementRatio, LinearBaselineFitter, persistence, rolloutMap} from '../../../src/training/baselines.js'
import {fieldMetrics} from '../../../src/training/metrics.js'

/** Periodic advection by `shift` whole cells per step: exactly a linear map. */
function advection(n: number, T: number, nx: number, shift: number, seed: number): Float32Array {
  let s = seed
  const rand = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1
  const out = new Float32Array(n * T * nx)
  for (let i = 0; i < n; i++) {
    const u0 = Float32Array.from({length: nx}, () => rand())
    for (let t = 0; t < T; t++) for (let x = 0; x < nx; x++) out[(i * T + t) * nx + x] = u0[(((x - t * shift) % nx) + nx) % nx]
  }
  return out
}

test('Cholesky solves a small SPD system', () => {
  const a = Float64Array.from([4, 2, 2, 3])
  const b = Float64Array.from([2, 1]) // x = A^-1 b = [0.5, 0]
  choleskyInPlace(a, 2)
  choleskySolveInPlace(a, 2, b, 1)
  assert.ok(Math.abs(b[0] - 0.5) < 1e-12 && Math.abs(b[1]) < 1e-12)
})

test('the linear baseline learns periodic advection by a whole cell exactly', () => {
  const nx = 16
  const T = 6
  const fitter = new LinearBaselineFitter(nx)
  fitter.addTrajectories(advection(10, T, nx, 1, 1), 10, T)
  assert.equal(fitter.pairs, 50)
  const lin = fitter.solve()
  const test = advection(3, T, nx, 1, 99)
  const frames = new Float32Array(3 * (T - 1) * nx)
  const next = new Float32Array(3 * (T - 1) * nx)
  for (let i = 0; i < 3; i++) {
    frames.set(test.subarray(i * T * nx, (i * T + T - 1) * nx), i * (T - 1) * nx)
    next.set(test.subarray((i * T + 1) * nx, (i + 1) * T * nx), i * (T - 1) * nx)
  }
  const one = fieldMetrics(lin.predict(frames, nx), next, [3 * (T - 1), nx, 1])
  assert.ok(one.nrmse < 1e-4, `linear one-step nRMSE ${one.nrmse}`)
  // Persistence is far off on moving data; iterating the linear map stays exact.
  assert.ok(fieldMetrics(persistence.predict(frames, nx), next, [3 * (T - 1), nx, 1]).nrmse > 0.5)
  const first = Float32Array.from({length: nx}, (_, x) => Math.sin((2 * Math.PI * x) / nx))
  const roll = rolloutMap(lin, first, nx, 4)
  const expected = Float32Array.from({length: 4 * nx}, (_, j) => first[(((j % nx) - (Math.floor(j / nx) + 1)) % nx + nx) % nx])
  assert.ok(fieldMetrics(roll, expected, [4, nx, 1]).nrmse < 1e-4)
})

test('persistence is exact on a static field; rollouts repeat the first frame', () => {
  const u = Float32Array.from([0.5, -1, 2, 3])
  const m = fieldMetrics(persistence.predict(u, 4), u, [1, 4, 1])
  assert.equal(m.rmse, 0)
  assert.equal(m.nrmse, 0)
  assert.deepEqual(Array.from(rolloutMap(persistence, u, 4, 2)), [...u, ...u])
})

test('the fit streams: pairs fed one by one equal trajectories fed at once', () => {
  const nx = 8
  const data = advection(4, 5, nx, 2, 3)
  const a = new LinearBaselineFitter(nx)
  a.addTrajectories(data, 4, 5)
  const b = new LinearBaselineFitter(nx)
  for (let i = 0; i < 4; i++) for (let t = 0; t < 4; t++) b.addPair(data.subarray((i * 5 + t) * nx, (i * 5 + t + 1) * nx), data.subarray((i * 5 + t + 1) * nx, (i * 5 + t + 2) * nx))
  assert.deepEqual(Array.from(a.solve().weights), Array.from(b.solve().weights))
  assert.throws(() => new LinearBaselineFitter(nx).solve(), /no training pairs/)
})

test('improvement ratio is baseline over model', () => {
  assert.equal(improvementRatio(0.5, 0.1), 5)
  assert.equal(improvementRatio(0, 0), 1)
  assert.equal(improvementRatio(1, 0), null)
  assert.equal(improvementRatio(Number.NaN, 1), null)
})
