import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import * as tf from '@tensorflow/tfjs'

import {probeBackends, resolveBackend} from '../../../src/training/backend.js'
import {energySpectrum, nrmse, spectralEnergyError} from '../../../src/training/losses.js'
import {Rng} from '../../../src/training/rng.js'
import {UserError} from '../../../src/util/errors.js'

// Simulates a host without libtensorflow (the optional tfjs-node packages fail to import) and
// without Vulkan (whatever the developer's shell has set up).
const noNode = {
  hasCudaGpu: () => true,
  importModule: (name: string) => (name.includes('tfjs-node') ? Promise.reject(new Error(`Cannot find package '${name}'`)) : import(name)),
  env: {},
  fs: {exists: () => false, readdir: () => [], readText: () => ''},
}

describe('backend resolution', () => {
  it('auto falls through tfjs-node-gpu, webgpu and tfjs-node to wasm and records why', async () => {
    const r = await resolveBackend('auto', undefined, noNode)
    assert.equal(r.name, 'wasm')
    assert.equal(r.tf.getBackend(), 'wasm')
    assert.deepEqual(r.tried.map((t) => [t.name, t.ok]), [['tensorflow-gpu', false], ['webgpu', false], ['tensorflow', false], ['wasm', true]])
    assert.match(r.reason, /skipped tensorflow-gpu: Cannot find package/)
  })

  it('without a CUDA GPU, tfjs-node-gpu is not even imported', async () => {
    const imported: string[] = []
    const r = await resolveBackend('auto', undefined, {
      ...noNode,
      hasCudaGpu: () => false,
      importModule: (n) => (imported.push(n), noNode.importModule(n)),
    })
    assert.equal(r.name, 'wasm')
    assert.ok(!imported.includes('@tensorflow/tfjs-node-gpu'))
    assert.match(r.tried[0].detail, /no CUDA GPU/)
  })

  it('explicit cpu and wasm work; an unavailable explicit backend is a UserError', async () => {
    assert.equal((await resolveBackend('cpu')).tf.getBackend(), 'cpu')
    assert.equal((await resolveBackend('wasm')).tf.getBackend(), 'wasm')
    await assert.rejects(resolveBackend('tensorflow', undefined, noNode), (e: unknown) => e instanceof UserError && e.code === 'TRAIN_BACKEND_UNAVAILABLE')
    await assert.rejects(resolveBackend('webgl' as 'cpu'), (e: unknown) => e instanceof UserError && e.code === 'TRAIN_BACKEND_UNKNOWN')
  })

  it('probeBackends lists the five backends for ups doctor', async () => {
    const p = await probeBackends(noNode)
    assert.deepEqual(p.map((b) => b.name), ['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'])
    assert.deepEqual(p.map((b) => b.available), [false, false, false, true, true])
  })
})

describe('losses', () => {
  it('the matrix DFT energy spectrum matches the analytic one of a sine', async () => {
    await resolveBackend('cpu')
    const n = 16
    const x = tf.tensor2d(Array.from({length: n}, (_, i) => 2 * Math.sin((2 * Math.PI * 3 * i) / n)), [1, n])
    const e = Array.from(energySpectrum(x).dataSync())
    // amplitude 2 at k=3 -> |X_3|/n = 1 -> energy 1; everything else 0.
    e.forEach((v, k) => assert.ok(Math.abs(v - (k === 3 ? 1 : 0)) < 1e-5, `k=${k}: ${v}`))
    // [B, L, C] layout: the transform runs along axis 1 for each channel.
    const x3 = tf.stack([x.reshape([n]), tf.zeros([n])], 1).reshape([1, n, 2])
    assert.deepEqual(energySpectrum(x3).shape, [2, n / 2 + 1])
    assert.ok(spectralEnergyError(x, x).dataSync()[0] < 1e-6)
    // Doubling the amplitude quadruples the energy: error (4 - 1)^2 / 1^2 = 9.
    assert.ok(Math.abs(spectralEnergyError(tf.mul(x, 2), x).dataSync()[0] - 9) < 1e-3)
  })

  it('the spectral error of near-silent frames is bounded by the energy floor, not divided by ~0', async () => {
    await resolveBackend('cpu')
    const n = 16
    const silent = tf.tensor2d(Array.from({length: n}, (_, i) => 1e-6 * Math.sin((2 * Math.PI * i) / n)), [1, n])
    const off = tf.add(silent, 1e-2) as tf.Tensor2D
    // (E_pred - E_true)^2 ~ 1e-8 (the 0.01 offset's energy, squared) over the floor 1e-6, not over ~1e-25.
    const e = spectralEnergyError(off, silent).dataSync()[0]
    assert.ok(Math.abs(e - 0.01) < 1e-4, `${e}`)
  })

  it('nRMSE is the per-sample relative error', async () => {
    await resolveBackend('cpu')
    const t = tf.tensor2d([[3, 4], [1, 0]])
    const p = tf.tensor2d([[3, 4.5], [1, 0.2]])
    // sample 1: 0.5/5 = 0.1; sample 2: 0.2/1 = 0.2 -> mean 0.15
    assert.ok(Math.abs(nrmse(p, t).dataSync()[0] - 0.15) < 1e-5)
  })
})

describe('rng', () => {
  it('is deterministic per seed and resumes from a saved state', () => {
    const a = new Rng(42)
    const b = new Rng(42)
    assert.deepEqual(Array.from(a.fillUniform(5)), Array.from(b.fillUniform(5)))
    assert.notDeepEqual(Array.from(new Rng(43).fillUniform(5)), Array.from(new Rng(42).fillUniform(5)))
    const saved = JSON.parse(JSON.stringify(a.getState()))
    const next = [a.normal(), a.int(10), ...a.permutation(6)]
    const c = new Rng(saved)
    assert.deepEqual([c.normal(), c.int(10), ...c.permutation(6)], next)
    const u = new Rng(1).fillUniform(10000)
    const mean = u.reduce((s, v) => s + v, 0) / u.length
    assert.ok(Math.abs(mean - 0.5) < 0.02 && u.every((v) => v >= 0 && v < 1))
    assert.deepEqual([...new Rng(3).permutation(8)].sort(), [0, 1, 2, 3, 4, 5, 6, 7])
  })
})

describe('rng: gamma and beta draws (training.tau_distribution)', () => {
  const moments = (xs: number[]) => {
    const mean = xs.reduce((a, v) => a + v, 0) / xs.length
    return {mean, variance: xs.reduce((a, v) => a + (v - mean) ** 2, 0) / xs.length}
  }
  it('Beta(a, b) has mean a/(a+b) and variance ab/((a+b)^2 (a+b+1)), values in [0, 1]', () => {
    for (const [a, b] of [[1.2, 1.2], [2, 5], [0.5, 0.5]]) {
      const rng = new Rng(17)
      const xs = Array.from({length: 20000}, () => rng.beta(a, b))
      assert.ok(xs.every((x) => x >= 0 && x <= 1))
      const m = moments(xs)
      const variance = (a * b) / ((a + b) ** 2 * (a + b + 1))
      assert.ok(Math.abs(m.mean - a / (a + b)) < 0.01, `Beta(${a}, ${b}) mean ${m.mean}`)
      assert.ok(Math.abs(m.variance - variance) < 0.1 * variance, `Beta(${a}, ${b}) variance ${m.variance} vs ${variance}`)
    }
  })
  it('the corrector draws its training tau from the configured distribution', async () => {
    const {drawTau} = await import('../../../src/training/models/corrector.js')
    const narrow = new Rng(3)
    const xs = Array.from({length: 2000}, () => drawTau(narrow, {type: 'beta', alpha: 200, beta: 200}))
    assert.ok(xs.every((x) => Math.abs(x - 0.5) < 0.1))
    const u = new Rng(3)
    const us = Array.from({length: 2000}, () => drawTau(u))
    assert.ok(us.some((x) => x < 0.1) && us.some((x) => x > 0.9))
  })
})
