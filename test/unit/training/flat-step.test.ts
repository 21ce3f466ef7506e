import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import * as tf from '@tensorflow/tfjs'

import {type FusedMode, setFusedKernels, setReferenceLayers} from '../../../src/training/fused.js'
import {trainingLoss} from '../../../src/training/losses.js'
import {LatentOperator} from '../../../src/training/models/operator.js'
import {Optimizer, type OptimizerConfig} from '../../../src/training/optim.js'
import {ReferenceEma, ReferenceOptimizer, referenceUpdate} from '../../fixtures/optim-reference.js'
import {ParamStore} from '../../../src/training/params.js'
import {Rng} from '../../../src/training/rng.js'
import {Ema, lossAndGrads, trainStep} from '../../../src/training/step.js'
import {BACKENDS, randn, useBackend} from './helpers.js'

const opOpts = {inputDim: 4, hiddenDim: 8, depths: [1, 1], groupSize: 4, numHeads: 2, mlpRatio: 2, dropout: 0, tokens: 4, timeEmbedDim: 8}
const ADAMW: OptimizerConfig = {type: 'adamw', lr: 0.01, weightDecay: 0.03}
const CLIP = 0.5
const STEPS = 10

/** ||a - b|| / ||b|| over a whole array. */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0
  let n = 0
  for (let i = 0; i < b.length; i++) {
    d += (a[i] - b[i]) ** 2
    n += b[i] ** 2
  }
  return Math.sqrt(d) / Math.max(Math.sqrt(n), 1e-12)
}

function batches(): Array<{z0: tf.Tensor3D; z1: tf.Tensor3D}> {
  const rng = new Rng(11)
  return Array.from({length: STEPS}, () => ({z0: randn(rng, [6, 4, 4]) as tf.Tensor3D, z1: randn(rng, [6, 4, 4]) as tf.Tensor3D}))
}

interface Run {
  losses: number[]
  weights: Map<string, Float32Array>
  ema: Map<string, Float32Array>
  clipped?: boolean[]
}

/** The path as it was: tfjs-op layers, per-variable update, clipping and EMA. */
function referenceRun(data: ReturnType<typeof batches>): Run {
  const prevLayers = setReferenceLayers(true)
  const prevFused = setFusedKernels('off')
  const store = new ParamStore(new Rng(3))
  const op = new LatentOperator(store, opOpts)
  const optimizer = new ReferenceOptimizer(store, ADAMW)
  const ema = new ReferenceEma(store, 0.9)
  try {
    const losses = data.map(({z0, z1}) => {
      const {loss, grads} = lossAndGrads(store, () => trainingLoss(op.forward(z0, 0.1), z1, {lambdaSpectral: 0.05}))
      const value = loss.dataSync()[0]
      referenceUpdate(grads, {optimizer, clipNorm: CLIP, ema})
      tf.dispose([loss, ...grads.values()])
      return value
    })
    return {losses, weights: new Map(store.entries().map(([n, v]) => [n, v.dataSync() as Float32Array])), ema: new Map([...ema.shadows].map(([n, v]) => [n, v.dataSync() as Float32Array]))}
  } finally {
    optimizer.dispose()
    ema.dispose()
    op.dispose()
    store.dispose()
    setReferenceLayers(prevLayers)
    setFusedKernels(prevFused)
  }
}

/** The flat path: customGrad layers, one update, clip and EMA over the flat buffer. */
function flatRun(data: ReturnType<typeof batches>, mode: FusedMode): Run {
  const prevFused = setFusedKernels(mode)
  const store = new ParamStore(new Rng(3))
  const op = new LatentOperator(store, opOpts)
  const optimizer = new Optimizer(store, ADAMW)
  const ema = new Ema(store, 0.9)
  try {
    const results = data.map(({z0, z1}, i) => trainStep({store, optimizer, ema, clipNorm: CLIP, lossFns: [() => trainingLoss(op.forward(z0, 0.1), z1, {lambdaSpectral: 0.05})], context: {stage: 'operator', epoch: 1, step: i + 1}}))
    return {losses: results.map((r) => r.loss), clipped: results.map((r) => r.clipped), weights: new Map(store.entries().map(([n, v]) => [n, v.dataSync() as Float32Array])), ema: new Map(ema.exportArrays().map((a) => [a.name, a.data as Float32Array]))}
  } finally {
    optimizer.dispose()
    ema.dispose()
    op.dispose()
    store.dispose()
    setFusedKernels(prevFused)
  }
}

for (const backend of BACKENDS) {
  describe(`flat optimizer and fused layers against the per-variable reference [${backend}]`, () => {
    for (const mode of ['auto', 'off'] as const) {
      it(`${STEPS} AdamW steps with clipping and EMA agree to 1e-5 in loss, weights and EMA (${mode === 'auto' ? 'JS update' : 'tfjs-op update'})`, async () => {
        await useBackend(backend)
        const data = batches()
        const ref = referenceRun(data)
        const got = flatRun(data, mode)
        ref.losses.forEach((l, i) => assert.ok(Math.abs(got.losses[i] - l) <= 1e-5 * Math.abs(l), `step ${i + 1}: loss ${got.losses[i]} vs ${l}`))
        // The weights moved (the comparison is not between two untouched initialisations).
        assert.ok(ref.losses.at(-1)! < ref.losses[0])
        assert.ok(got.clipped!.includes(true) && got.clipped!.includes(false), `clipping on some steps only: ${got.clipped}`)
        for (const [name, w] of ref.weights) {
          assert.ok(relDiff(got.weights.get(name)!, w) <= 1e-5, `${name}: ${relDiff(got.weights.get(name)!, w)}`)
          assert.ok(relDiff(got.ema.get(name)!, ref.ema.get(name)!) <= 1e-5, `EMA of ${name}`)
        }
        tf.dispose(data.flatMap((d) => [d.z0, d.z1]))
      })
    }

    it('resumes from a per-variable (old format) optimizer and EMA state and continues as the reference does', async () => {
      await useBackend(backend)
      const make = () => {
        const s = new ParamStore(new Rng(8))
        s.add('a/w', [3, 4], {kind: 'normal', std: 1})
        s.add('a/b', [4], {kind: 'normal', std: 1})
        return s
      }
      const rng = new Rng(9)
      const grads = Array.from({length: 6}, () => new Map<string, tf.Tensor>([['a/w', randn(rng, [3, 4])], ['a/b', randn(rng, [4])]]))
      const refStore = make()
      const ref = new ReferenceOptimizer(refStore, ADAMW)
      const refEma = new ReferenceEma(refStore, 0.9)
      for (const g of grads.slice(0, 3)) referenceUpdate(g, {optimizer: ref, ema: refEma})
      // What a checkpoint of the per-variable optimizer held: optim/m/<param>, optim/v/<param>, ema/<param>.
      const oldSlots = ref.exportArrays('optim/')
      const oldEma = [...refEma.shadows].map(([name, v]) => ({name: `ema/${name}`, shape: [...v.shape], dtype: 'float32' as const, data: v.dataSync() as Float32Array}))
      const store = make()
      store.importArrays(refStore.exportArrays())
      const opt = new Optimizer(store, ADAMW)
      const ema = new Ema(store, 0.9)
      opt.importState({type: 'adamw', step: 3, lr: ADAMW.lr, config: ADAMW}, oldSlots)
      ema.importArrays(oldEma, 'ema/')
      // The flat optimizer writes the same names and shapes back.
      assert.deepEqual(opt.exportState().arrays.map((a) => [a.name, a.shape]), oldSlots.map((a) => [a.name, a.shape]))
      for (const g of grads.slice(3)) {
        referenceUpdate(g, {optimizer: ref, ema: refEma})
        opt.apply(g)
        ema.update()
      }
      for (const name of ['a/w', 'a/b']) {
        assert.ok(relDiff(store.get(name).dataSync(), refStore.get(name).dataSync()) <= 1e-6, name)
        assert.ok(relDiff(ema.exportArrays().find((a) => a.name === name)!.data, refEma.shadows.get(name)!.dataSync()) <= 1e-6, `EMA ${name}`)
      }
      tf.dispose(grads.flatMap((g) => [...g.values()]))
      for (const x of [ref, refEma, opt, ema, store, refStore]) x.dispose()
    })
  })
}
