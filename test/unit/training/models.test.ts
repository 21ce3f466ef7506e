import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import * as tf from '@tensorflow/tfjs'

import {GridAutoencoder} from '../../../src/training/models/autoencoder.js'
import {ConsistencyStudent} from '../../../src/training/models/consistency.js'
import {ResidualCorrector} from '../../../src/training/models/corrector.js'
import {LatentOperator} from '../../../src/training/models/operator.js'
import {SteadyPrior} from '../../../src/training/models/steady-prior.js'
import {ParamStore} from '../../../src/training/params.js'
import {Rng} from '../../../src/training/rng.js'
import {BACKENDS, gradCheck, randn, useBackend} from './helpers.js'

const B = 2
const T = 8
const D = 6
const tinyOp = {inputDim: D, hiddenDim: 8, depths: [1, 1, 1], groupSize: 4, numHeads: 2, mlpRatio: 2, dropout: 0, tokens: T, timeEmbedDim: 8}

function assertGradOk(r: ReturnType<typeof gradCheck>, what: string): void {
  const scale = Math.max(Math.abs(r.analytic), Math.abs(r.numeric), 1e-3)
  assert.ok(Math.abs(r.analytic - r.numeric) / scale < 0.03, `${what}: autodiff ${r.analytic} vs finite difference ${r.numeric}`)
  assert.equal(r.nonZero, r.total, `${what}: every parameter should get a gradient (${r.nonZero}/${r.total})`)
}

for (const backend of BACKENDS) {
  describe(`models on ${backend}`, () => {
    it('operator: shapes, residual form, gradients', async () => {
      await useBackend(backend)
      const rng = new Rng(1)
      const store = new ParamStore(new Rng(2))
      const op = new LatentOperator(store, tinyOp)
      const z0 = randn(rng, [B, T, D]) as tf.Tensor3D
      const z1 = randn(rng, [B, T, D]) as tf.Tensor3D
      const out0 = op.forward(z0, [0.1, 0.2])
      assert.deepEqual(out0.shape, [B, T, D])
      // The output LayerNorm's gain starts at zero: an untrained operator is persistence.
      assert.deepEqual(Array.from(out0.dataSync()), Array.from(z0.dataSync()))
      // With a unit gain (as after training moves it), z_next - z is a LayerNorm output: zero mean per token.
      store.get('operator/out_norm/g').assign(tf.ones([D]))
      const out = op.forward(z0, [0.1, 0.2])
      const delta = tf.sub(out, z0)
      const tokenMeans = tf.mean(delta, -1).dataSync()
      for (const m of tokenMeans) assert.ok(Math.abs(m) < 1e-4)
      assert.equal(op.paramCount(), store.count())
      assert.ok(op.activationBytes(B) > 0)
      assertGradOk(gradCheck(store, () => tf.mean(tf.square(tf.sub(op.forward(z0, [0.1, 0.2]), z1)))), 'operator')
      // An odd token count exercises the padded downsampling and non-2x upsampling.
      const store2 = new ParamStore(new Rng(3))
      const op2 = new LatentOperator(store2, {...tinyOp, tokens: 5})
      store2.get('operator/out_norm/g').assign(tf.ones([D]))
      assert.deepEqual(op2.levelTokens, [5, 3, 2])
      assert.deepEqual(op2.forward(randn(rng, [B, 5, D]) as tf.Tensor3D, 0.1).shape, [B, 5, D])
      const z5 = randn(rng, [B, 5, D]) as tf.Tensor3D
      assertGradOk(gradCheck(store2, () => tf.mean(tf.square(op2.forward(z5, 0.1)))), 'operator, 5 tokens')
    })

    it('autoencoder 1-D and 2-D: shapes and gradients', async () => {
      await useBackend(backend)
      const rng = new Rng(4)
      const store = new ParamStore(new Rng(5))
      const ae = new GridAutoencoder(store, {gridShape: [16], channels: 2, tokens: 4, dim: D, hiddenDim: 12})
      const u = randn(rng, [B, 16, 2])
      const z = ae.encode(u)
      assert.deepEqual(z.shape, [B, 4, D])
      // Latents are centred per token (the operator's LayerNorm update has zero mean over dims).
      for (const m of tf.mean(z, -1).dataSync()) assert.ok(Math.abs(m) < 1e-5, `token mean ${m}`)
      assert.deepEqual(ae.decode(z).shape, [B, 16, 2])
      assertGradOk(gradCheck(store, () => tf.mean(tf.square(tf.sub(ae.decode(ae.encode(u)), u)))), 'autoencoder 1-D')

      const store2 = new ParamStore(new Rng(6))
      const ae2 = new GridAutoencoder(store2, {gridShape: [4, 8], channels: 1, tokens: 4, dim: D, hiddenDim: 12})
      const u2 = randn(rng, [B, 4, 8, 1])
      assert.deepEqual(ae2.encode(u2).shape, [B, 4, D])
      assert.deepEqual(ae2.decode(ae2.encode(u2)).shape, [B, 4, 8, 1])
      assertGradOk(gradCheck(store2, () => tf.mean(tf.square(tf.sub(ae2.decode(ae2.encode(u2)), u2)))), 'autoencoder 2-D')
      assert.throws(() => new GridAutoencoder(new ParamStore(new Rng(0)), {gridShape: [10], channels: 1, tokens: 4, dim: D, hiddenDim: 4}), /does not tile/)
    })

    it('corrector, consistency student and steady prior: shapes and gradients', async () => {
      await useBackend(backend)
      const rng = new Rng(7)
      const copts = {latentDim: D, hiddenDim: 10, numLayers: 3, timeEmbedDim: 8, dropout: 0}
      const store = new ParamStore(new Rng(8))
      const corr = new ResidualCorrector(store, copts)
      const cond = randn(rng, [B, T, D]) as tf.Tensor3D
      const resid = randn(rng, [B, T, D], 0.1) as tf.Tensor3D
      assert.deepEqual(corr.drift(cond, cond, [0.3, 0.7]).shape, [B, T, D])
      const loss = corr.lossFn(cond, resid, rng, {training: false})
      assertGradOk(gradCheck(store, loss), 'corrector')
      const eps = corr.noise([B, T, D], rng)
      assert.deepEqual(corr.sample(cond, eps, 4).shape, [B, T, D])

      const sstore = new ParamStore(new Rng(9))
      const student = new ConsistencyStudent(sstore, copts)
      // Boundary condition: f(x, c, 1) = x exactly.
      const atOne = student.apply(eps, cond, [1, 1])
      assert.deepEqual(Array.from(atOne.dataSync()), Array.from(eps.dataSync()))
      assert.deepEqual(student.sample(cond, eps).shape, [B, T, D])
      const dl = student.distillationLossFn(corr, cond, resid, rng, 4, {training: false})
      assertGradOk(gradCheck(sstore, dl), 'consistency student')
      // training.distill_micro_batch: the teacher step row by row gives the same loss (B = 2 here).
      const whole = student.distillationLossFn(corr, cond, resid, new Rng(21), 4, {training: false})
      const rowwise = student.distillationLossFn(corr, cond, resid, new Rng(21), 4, {training: false}, 1)
      assert.ok(Math.abs(whole().dataSync()[0] - rowwise().dataSync()[0]) < 1e-6)
      whole.dispose()
      rowwise.dispose()
      // The teacher's parameters are constants in the distillation loss.
      assert.equal(store.names().some((n) => sstore.has(n)), false)

      const pstore = new ParamStore(new Rng(10))
      const prior = new SteadyPrior(pstore, {latentDim: D, hiddenDim: 10, numLayers: 2})
      assert.deepEqual(prior.forward(cond).shape, [B, T, D])
      assertGradOk(gradCheck(pstore, () => tf.mean(tf.square(tf.sub(prior.forward(cond), resid)))), 'steady prior')
      for (const m of [corr, student, prior]) {
        assert.equal(m.paramCount(), m.store.count())
        assert.ok(m.activationBytes(B, T) > 0)
      }
    })
  })
}
