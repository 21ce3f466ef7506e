import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import * as tf from '@tensorflow/tfjs'

import {loadCheckpoint, saveCheckpoint} from '../../../src/training/checkpoint.js'
import {ResidualCorrector} from '../../../src/training/models/corrector.js'
import {LatentOperator} from '../../../src/training/models/operator.js'
import {Optimizer, type OptimizerState} from '../../../src/training/optim.js'
import {ParamStore} from '../../../src/training/params.js'
import {Rng} from '../../../src/training/rng.js'
import {Scheduler, type SchedulerState} from '../../../src/training/schedule.js'
import {clipByGlobalNorm, Ema, globalNorm, lossAndGrads, trainStep} from '../../../src/training/step.js'
import {trainingLoss} from '../../../src/training/losses.js'
import {UserError} from '../../../src/util/errors.js'
import {randn, useBackend} from './helpers.js'

const opOpts = {inputDim: 4, hiddenDim: 8, depths: [1, 1], groupSize: 4, numHeads: 2, mlpRatio: 2, dropout: 0.1, tokens: 4, timeEmbedDim: 8}

describe('train step', () => {
  it('a NaN loss stops with an error naming stage, epoch, step and the fixes, leaving weights untouched', async () => {
    await useBackend('wasm')
    const store = new ParamStore(new Rng(1))
    const w = store.add('w', [3], {kind: 'normal', std: 1})
    const before = Array.from(w.dataSync())
    const opt = new Optimizer(store, {type: 'adam', lr: 0.1})
    const x = tf.tensor1d([1, Number.NaN, 2])
    assert.throws(
      () => trainStep({store, optimizer: opt, lossFns: [() => tf.sum(tf.mul(w, x))], context: {stage: 'operator', epoch: 3, step: 41}}),
      (e: unknown) =>
        e instanceof UserError &&
        e.code === 'TRAIN_NONFINITE' &&
        /stage operator, epoch 3, step 41/.test(e.message) &&
        /learning rate/.test(e.hint ?? '') &&
        /clipping/.test(e.hint ?? ''),
    )
    assert.deepEqual(Array.from(w.dataSync()), before)
    assert.equal(opt.step, 0)
    // Finite loss but an infinite gradient is caught too.
    assert.throws(
      () => trainStep({store, optimizer: opt, lossFns: [() => tf.sum(tf.sqrt(tf.abs(tf.mul(w, 0))))], context: {stage: 'diff_residual', epoch: 1, step: 2}}),
      /gradient norm is (NaN|Infinity) in stage diff_residual, epoch 1, step 2/,
    )
  })

  it('accumulating micro-batches equals one step on their union; clipping scales to the max norm', async () => {
    await useBackend('wasm')
    const rng = new Rng(2)
    const x = randn(rng, [8, 3])
    const y = randn(rng, [8, 1])
    const make = (): ParamStore => {
      const s = new ParamStore(new Rng(3))
      s.add('w', [3, 1], {kind: 'normal', std: 1})
      return s
    }
    const loss = (s: ParamStore, a: number, b: number) => () => trainingLoss(tf.matMul(x.slice([a, 0], [b - a, 3]), s.get('w')), y.slice([a, 0], [b - a, 1]))
    const s1 = make()
    const r1 = trainStep({store: s1, optimizer: new Optimizer(s1, {type: 'sgd', lr: 0.1}), lossFns: [loss(s1, 0, 8)], context: {stage: 't', epoch: 0, step: 0}})
    const s2 = make()
    const r2 = trainStep({store: s2, optimizer: new Optimizer(s2, {type: 'sgd', lr: 0.1}), lossFns: [loss(s2, 0, 4), loss(s2, 4, 8)], context: {stage: 't', epoch: 0, step: 0}})
    assert.ok(Math.abs(r1.loss - r2.loss) < 1e-5)
    assert.ok(Math.abs(r1.gradNorm - r2.gradNorm) < 1e-5)
    const d = tf.max(tf.abs(tf.sub(s1.get('w'), s2.get('w')))).dataSync()[0]
    assert.ok(d < 1e-6, `accumulated update differs by ${d}`)

    const grads = new Map([['a', tf.tensor1d([3, 0])], ['b', tf.tensor1d([0, 4])]])
    assert.ok(Math.abs(globalNorm(grads) - 5) < 1e-6)
    const c = clipByGlobalNorm(grads, 1)
    assert.equal(c.clipped, true)
    assert.ok(Math.abs(globalNorm(c.grads) - 1) < 1e-5)
    assert.equal(clipByGlobalNorm(c.grads, 10).clipped, false)
  })

  it('EMA follows decay * shadow + (1 - decay) * param', async () => {
    await useBackend('cpu')
    const store = new ParamStore(new Rng(0))
    const p = store.add('p', [1], {kind: 'const', value: 1})
    const ema = new Ema(store, 0.9)
    p.assign(tf.tensor1d([2]))
    ema.update()
    p.assign(tf.tensor1d([3]))
    ema.update()
    const v = ema.withEmaWeights(() => p.dataSync()[0])
    assert.ok(Math.abs(v - (0.9 * (0.9 + 0.2) + 0.3)) < 1e-6)
    assert.equal(p.dataSync()[0], 3)
  })

  it('resuming from a checkpoint reproduces an uninterrupted run bit-exactly (dropout, tau and noise from the RNG)', async () => {
    await useBackend('wasm')
    const dir = await mkdtemp(join(tmpdir(), 'ups-resume-'))
    const data = new Rng(99)
    const z0 = randn(data, [3, 4, 4]) as tf.Tensor3D
    const z1 = randn(data, [3, 4, 4]) as tf.Tensor3D
    const build = () => {
      const store = new ParamStore(new Rng(5))
      const op = new LatentOperator(store, opOpts)
      const corr = new ResidualCorrector(store, {latentDim: 4, hiddenDim: 8, numLayers: 2, timeEmbedDim: 8, dropout: 0.1})
      const optimizer = new Optimizer(store, {type: 'adamw', lr: 0.01, weightDecay: 0.01})
      const scheduler = new Scheduler({type: 'cosineannealinglr', tMax: 6}, 0.01)
      const ema = new Ema(store, 0.99)
      return {store, op, corr, optimizer, scheduler, ema, rng: new Rng(123)}
    }
    type Run = ReturnType<typeof build>
    const epoch = (r: Run, e: number): void => {
      r.optimizer.lr = r.scheduler.lr
      const ctx = {training: true, rng: r.rng}
      const corrLoss = r.corr.lossFn(z0, tf.sub(z1, z0) as tf.Tensor3D, r.rng, ctx)
      trainStep({
        store: r.store,
        optimizer: r.optimizer,
        lossFns: [() => tf.add(trainingLoss(r.op.forward(z0, 0.1, ctx), z1, {lambdaSpectral: 0.1, lambdaRelative: 0.1}), corrLoss())],
        clipNorm: 1,
        ema: r.ema,
        context: {stage: 'operator', epoch: e, step: e},
      })
      corrLoss.dispose()
      r.scheduler.step()
    }
    try {
      const full = build()
      for (let e = 0; e < 5; e++) epoch(full, e)

      const first = build()
      for (let e = 0; e < 2; e++) epoch(first, e)
      const {state, arrays} = first.optimizer.exportState()
      const path = join(dir, 'operator.ckpt')
      await saveCheckpoint(path, {
        tensors: [...first.store.exportArrays('model/'), ...arrays, ...first.ema.exportArrays('ema/')],
        epoch: 2,
        step: 2,
        rng: first.rng.getState(),
        optimizer: state,
        scheduler: first.scheduler.state(),
      })
      const resumed = build()
      // A different RNG position before restoring proves the state comes from the checkpoint.
      resumed.rng.uniform()
      const ck = await loadCheckpoint(path)
      resumed.store.importArrays(ck.tensors, 'model/')
      resumed.optimizer.importState(ck.optimizer as OptimizerState, ck.tensors)
      resumed.ema.importArrays(ck.tensors, 'ema/')
      resumed.scheduler.load(ck.scheduler as SchedulerState)
      resumed.rng.setState(ck.rng!)
      for (let e = 2; e < 5; e++) epoch(resumed, e)

      for (const name of full.store.names()) {
        assert.deepEqual(Array.from(resumed.store.get(name).dataSync()), Array.from(full.store.get(name).dataSync()), name)
      }
      assert.deepEqual(resumed.ema.exportArrays().map((a) => Array.from(a.data)), full.ema.exportArrays().map((a) => Array.from(a.data)))
      assert.deepEqual(resumed.rng.getState(), full.rng.getState())
      // And the run really trained: the weights moved.
      const fresh = build()
      assert.notDeepEqual(Array.from(fresh.store.get('operator/input/w').dataSync()), Array.from(full.store.get('operator/input/w').dataSync()))
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })

  it('lossAndGrads keys gradients by our parameter names', async () => {
    await useBackend('cpu')
    const store = new ParamStore(new Rng(0))
    store.add('a/w', [2], {kind: 'const', value: 2})
    const {loss, grads} = lossAndGrads(store, () => tf.sum(tf.square(store.get('a/w'))))
    assert.equal(loss.dataSync()[0], 8)
    assert.deepEqual(Array.from(grads.get('a/w')!.dataSync()), [4, 4])
  })
})
