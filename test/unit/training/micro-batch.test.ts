import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import * as tf from '@tensorflow/tfjs'

import {resolveStage, type UpsConfig} from '../../../src/config/index.js'
import {trainingSchema} from '../../../src/config/schema.js'
import {mergeMicroBatches, resolveMicroBatch} from '../../../src/training/micro-batch.js'
import {ParamStore} from '../../../src/training/params.js'
import {Rng} from '../../../src/training/rng.js'
import {runStage} from '../../../src/training/stages/loop.js'
import type {StageSpec} from '../../../src/training/stages/types.js'
import {tempDir} from '../../helpers.js'
import {useBackend} from './helpers.js'

describe('GPU micro-batch policy (training.micro_batch)', () => {
  it('auto: CPU backends keep batch_size per pass; GPU backends run the whole step in one pass', () => {
    for (const backend of ['wasm', 'cpu', 'tensorflow']) {
      assert.deepEqual(resolveMicroBatch({setting: undefined, backend, batchSize: 12, accumSteps: 4}), {merge: 1, rows: 12, passes: 4, reason: `training.micro_batch auto: ${backend} keeps batch_size 12 per pass`})
    }
    for (const backend of ['webgpu', 'tensorflow-gpu']) {
      const c = resolveMicroBatch({setting: 'auto', backend, batchSize: 12, accumSteps: 4})
      assert.equal(c.merge, 4)
      assert.equal(c.rows, 48)
      assert.equal(c.passes, 1)
    }
  })

  it('N: whole micro-batches per pass, between 1 and accum_steps, on any backend', () => {
    assert.equal(resolveMicroBatch({setting: 24, backend: 'webgpu', batchSize: 12, accumSteps: 4}).merge, 2)
    assert.equal(resolveMicroBatch({setting: 30, backend: 'cpu', batchSize: 12, accumSteps: 4}).rows, 24)
    assert.equal(resolveMicroBatch({setting: 1000, backend: 'cpu', batchSize: 12, accumSteps: 4}).merge, 4)
    assert.equal(resolveMicroBatch({setting: 5, backend: 'webgpu', batchSize: 12, accumSteps: 4}).merge, 1)
  })

  it('merging concatenates micro-batches in order; merge 1 is the very same group', () => {
    const group = [[1, 2], [3, 4], [5, 6], [7]]
    assert.equal(mergeMicroBatches(group, 1), group)
    assert.deepEqual(mergeMicroBatches(group, 2), [[1, 2, 3, 4], [5, 6, 7]])
    assert.deepEqual(mergeMicroBatches(group, 4), [[1, 2, 3, 4, 5, 6, 7]])
  })

  it('the config key validates: auto or a positive integer', () => {
    assert.equal(trainingSchema.safeParse({micro_batch: 'auto'}).success, true)
    assert.equal(trainingSchema.safeParse({micro_batch: 64}).success, true)
    assert.equal(trainingSchema.safeParse({micro_batch: 0}).success, false)
    assert.equal(trainingSchema.safeParse({micro_batch: 'big'}).success, false)
  })
})

/** y = w x; records the rows of every pass. */
function spec(passes: number[]): StageSpec {
  const store = new ParamStore(new Rng(1))
  const w = store.add('w', [1], {kind: 'zeros'})
  const xs = Array.from({length: 48}, (_, i) => (i - 24) / 12)
  return {
    stage: 'operator', store, trainItems: 48, valItems: 0,
    trainLoss(idx) {
      passes.push(idx.length)
      const x = tf.tensor1d(idx.map((i) => xs[i]))
      return {fn: () => tf.mean(tf.square(tf.sub(tf.mul(x, w), tf.mul(x, 2)))) as tf.Scalar, dispose: () => x.dispose()}
    },
    valLoss: () => 0,
    dispose: () => store.dispose(),
  }
}

describe('the loop with a merged micro-batch', () => {
  const cfg = {
    data: {task: 'burgers1d'}, latent: {dim: 4, tokens: 4}, operator: {pdet: {hidden_dim: 8, depths: [1], group_size: 4, num_heads: 2}},
    optimizer: {name: 'adamw', lr: 0.05}, training: {batch_size: 4, accum_steps: 3, grad_clip: 1, ema_decay: null},
    stages: {operator: {epochs: 2, patience: 0}},
  } as unknown as UpsConfig
  const train = async (dir: string, merge?: number, clock: () => number = () => 0) => {
    const passes: number[] = []
    const s = spec(passes)
    try {
      const outcome = await runStage({
        spec: s, settings: resolveStage(cfg, 'operator'), checkpointsDir: dir, seed: 3, checkpointInterval: 0, globalStepOffset: 0,
        clock, logger: {info: () => undefined, warn: () => undefined}, microBatchMerge: merge,
      })
      return {outcome, passes, w: s.store.get('w').dataSync()[0]}
    } finally {
      s.dispose()
    }
  }

  it('one pass of batch x accum rows per step, the same steps and (up to rounding) the same weights; merge 1 is bit-identical to none', async (t) => {
    await useBackend('cpu')
    const plain = await train(await tempDir(t))
    const one = await train(await tempDir(t), 1)
    const merged = await train(await tempDir(t), 3)
    assert.deepEqual(plain.passes, Array(2 * 12).fill(4), '48 items: 12 micro-batches of 4 per epoch')
    assert.deepEqual(merged.passes, Array(2 * 4).fill(12), 'merged: 4 passes of 12 per epoch')
    assert.equal(merged.outcome.steps, plain.outcome.steps)
    assert.equal(one.w, plain.w)
    assert.deepEqual(one.outcome.hashes, plain.outcome.hashes)
    assert.ok(Math.abs(merged.w - plain.w) < 1e-5 * Math.max(1, Math.abs(plain.w)), `${merged.w} vs ${plain.w}`)
    assert.ok(plain.outcome.samplesPerSec === null, 'a frozen clock: no step time, no samples/s')
  })

  it('reports samples/s of step time: items trained / time in steps', async (t) => {
    await useBackend('cpu')
    let now = 0
    // Each read moves 10 ms on: an epoch's steps then span one read, 10 ms.
    const r = await train(await tempDir(t), 3, () => (now += 10))
    assert.equal(r.outcome.samplesPerSec, (2 * 48 * 1000) / (2 * 10))
  })
})
