import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {
  cellCentres, createRng, generateSample, randomSineModes, sineCellAverages, sinePointValue, solveAdvection, solveBurgers,
} from '../../../src/data/generate/index.js'
import {parseSplits, splitCounts} from '../../../src/data/generate/splits.js'

const sum = (a: ArrayLike<number>, from = 0, to = a.length) => {
  let s = 0
  for (let i = from; i < to; i++) s += a[i]
  return s
}
const frame = (u: Float64Array, nx: number, k: number) => u.subarray(k * nx, (k + 1) * nx)

describe('seeded PRNG', () => {
  it('is deterministic per seed and differs between seeds', () => {
    const a = createRng(42)
    const b = createRng(42)
    const c = createRng(43)
    const xa = Array.from({length: 5}, () => a.next())
    assert.deepEqual(xa, Array.from({length: 5}, () => b.next()))
    assert.notDeepEqual(xa, Array.from({length: 5}, () => c.next()))
    // Pinned values: a change here changes every generated dataset.
    const r = createRng(0)
    assert.deepEqual([r.next(), r.next(), r.int(0, 1_000_000)], [0.9791452463250607, 0.8250711336731911, 284616])
    for (const v of xa) assert.ok(v >= 0 && v < 1)
  })
  it('draws integers over the whole inclusive range', () => {
    const r = createRng(7)
    const seen = new Set<number>()
    for (let i = 0; i < 500; i++) seen.add(r.int(1, 4))
    assert.deepEqual([...seen].sort(), [1, 2, 3, 4])
  })
  it('draws initial conditions as PDEBench does: two wavenumber draws, the undrawn slots a constant mean', () => {
    let nonZeroMeans = 0
    for (let seed = 0; seed < 200; seed++) {
      const m = randomSineModes(createRng(seed))
      // One or two oscillating slots; a slot drawn twice oscillates at twice its wavenumber.
      assert.ok(m.wavenumbers.length >= 1 && m.wavenumbers.length <= 2, `seed ${seed}`)
      for (const k of m.wavenumbers) assert.ok([1, 2, 3, 4, 6, 8].includes(k), `seed ${seed}: k ${k}`)
      assert.ok(Math.abs(m.offset) < 4 - m.wavenumbers.length + 1e-12)
      if (Math.abs(m.offset) > 0.05) nonZeroMeans++
    }
    // The undrawn slots leave a conserved mean, so fields do not all decay to silence.
    assert.ok(nonZeroMeans > 150, `${nonZeroMeans}`)
  })
})

describe('linear advection', () => {
  const modes = randomSineModes(createRng(11))
  modes.offset = 0.7
  it('shifts the initial condition exactly: beta t = 3 cells is a roll by 3', () => {
    const nx = 32
    const beta = 0.5
    const t = 3 / nx / beta
    const u = solveAdvection(modes, {nx, times: [0, t], beta})
    for (let i = 0; i < nx; i++) assert.ok(Math.abs(u[nx + i] - u[(i - 3 + nx) % nx]) < 1e-12, `cell ${i}`)
  })
  it('matches u0(x - beta t) at cell centres to the cell-average error O(dx^2)', () => {
    const nx = 64
    const beta = 0.1
    const times = [0, 0.37, 2]
    const u = solveAdvection(modes, {nx, times, beta})
    const x = cellCentres(nx)
    const bound = Math.PI ** 2 * 16 / (6 * nx * nx) * 2 // (pi k dx)^2/6 * sum of amplitudes, k <= 4
    times.forEach((t, k) => {
      for (let i = 0; i < nx; i++) assert.ok(Math.abs(u[k * nx + i] - sinePointValue(modes, x[i] - beta * t)) < bound)
    })
  })
  it('conserves mass to 1e-5 relative', () => {
    const nx = 48
    const u = solveAdvection(modes, {nx, times: [0, 0.5, 1.3, 2], beta: 0.4})
    const m0 = sum(u, 0, nx)
    for (let k = 1; k < 4; k++) assert.ok(Math.abs(sum(u, k * nx, (k + 1) * nx) - m0) <= 1e-5 * Math.abs(m0))
  })
})

describe('viscous Burgers (finite volume)', () => {
  const times = Array.from({length: 21}, (_, k) => k * 0.05)
  it('conserves mass to 1e-5 relative', () => {
    const modes = randomSineModes(createRng(5))
    modes.offset = 0.4
    const nx = 64
    const u = solveBurgers(sineCellAverages(modes, nx), {nu: 0.01, times})
    const m0 = sum(u, 0, nx)
    assert.ok(Math.abs(m0) > 1)
    for (let k = 1; k < times.length; k++) assert.ok(Math.abs(sum(frame(u, nx, k)) - m0) <= 1e-5 * Math.abs(m0), `frame ${k}`)
  })
  it('keeps the zero mean of a pure-sine initial condition (|M| <= 1e-5 sum|u0|)', () => {
    const nx = 64
    const u = solveBurgers(sineCellAverages({...randomSineModes(createRng(9)), offset: 0}, nx), {nu: 0.01, times})
    const scale = sum(frame(u, nx, 0).map(Math.abs))
    for (let k = 0; k < times.length; k++) assert.ok(Math.abs(sum(frame(u, nx, k))) <= 1e-5 * scale)
  })
  it('dissipates energy: sum u^2 decreases monotonically and strictly overall', () => {
    for (const seed of [1, 2, 3]) {
      const nx = 64
      const u = solveBurgers(sineCellAverages(randomSineModes(createRng(seed)), nx), {nu: 0.01, times})
      const energy = times.map((_, k) => sum(frame(u, nx, k).map((v) => v * v)))
      for (let k = 1; k < energy.length; k++) assert.ok(energy[k] <= energy[k - 1] * (1 + 1e-12), `seed ${seed} frame ${k}: ${energy[k]} > ${energy[k - 1]}`)
      assert.ok(energy[energy.length - 1] < 0.9 * energy[0])
    }
  })
  it('converges under grid refinement (observed order > 0.8)', () => {
    const modes = randomSineModes(createRng(3))
    modes.offset = 0.3
    const T = [0, 0.4]
    const fine = 512
    const ref = solveBurgers(sineCellAverages(modes, fine), {nu: 0.01, times: T}).subarray(fine)
    const errors = [32, 64, 128].map((nx) => {
      const u = solveBurgers(sineCellAverages(modes, nx), {nu: 0.01, times: T}).subarray(nx)
      const r = fine / nx
      let e = 0
      for (let i = 0; i < nx; i++) e += Math.abs(u[i] - sum(ref, i * r, (i + 1) * r) / r)
      return e / nx
    })
    for (let i = 1; i < errors.length; i++) {
      assert.ok(errors[i] < errors[i - 1], `error grew: ${errors}`)
      assert.ok(Math.log2(errors[i - 1] / errors[i]) > 0.8, `order ${Math.log2(errors[i - 1] / errors[i])}`)
    }
  })
  it('is not noise: the solution changes smoothly and is deterministic per seed', () => {
    const p = {task: 'burgers1d' as const, nx: 32, nt: 11, tEnd: 1, nu: 0.01, beta: 0.1}
    const a = generateSample(p, 17)
    assert.deepEqual(a, generateSample(p, 17))
    assert.notDeepEqual(a, generateSample(p, 18))
    // neighbouring cells differ far less than the field's range
    const f0 = a.subarray(0, 32)
    const range = Math.max(...f0) - Math.min(...f0)
    for (let i = 1; i < 32; i++) assert.ok(Math.abs(f0[i] - f0[i - 1]) < 0.5 * range)
  })
})

describe('splits', () => {
  it('parses fractions and rounds to counts that add up', () => {
    assert.deepEqual(parseSplits('train=0.8,val=0.1,test=0.1'), {train: 0.8, val: 0.1, test: 0.1})
    assert.deepEqual(splitCounts(10, {train: 0.8, val: 0.1, test: 0.1}), {train: 8, val: 1, test: 1})
    assert.deepEqual(splitCounts(7, {train: 0.8, val: 0.1, test: 0.1}), {train: 5, val: 1, test: 1})
    const c = splitCounts(1001, {train: 0.7, val: 0.15, test: 0.15})
    assert.equal(c.train + c.val + c.test, 1001)
  })
  it('rejects bad input with usage errors', () => {
    assert.throws(() => parseSplits('train=0.5,val=0.1'), (e: any) => e.code === 'DATA_BAD_SPLITS' && e.exitCode === 2 && /add up to 0.6/.test(e.message))
    assert.throws(() => parseSplits('train=1,bogus=0'), (e: any) => /unknown split "bogus"/.test(e.message))
    assert.throws(() => splitCounts(2, {train: 0.8, val: 0.1, test: 0.1}), (e: any) => /too few/.test(e.message))
  })
})
