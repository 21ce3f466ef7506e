import assert from 'node:assert/strict'
import {readdir} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import * as tf from '@tensorflow/tfjs'

import {resolveStage, type UpsConfig} from '../../../src/config/index.js'
import {loadCheckpoint} from '../../../src/training/checkpoint.js'
import {ParamStore} from '../../../src/training/params.js'
import {Rng} from '../../../src/training/rng.js'
import {type FaultPlan, KILL_POINTS, runStage, type StoredEpochRecord} from '../../../src/training/stages/loop.js'
import type {EpochRecord, StageSpec} from '../../../src/training/stages/types.js'
import {tempDir} from '../../helpers.js'
import {useBackend} from './helpers.js'

const quiet = {info: () => undefined, warn: () => undefined}

/** y = w x on 1-D data; train targets use slope 2, validation targets slope `valSlope`. */
function linearSpec(valSlope: number): StageSpec {
  const store = new ParamStore(new Rng(1))
  const w = store.add('w', [1], {kind: 'zeros'})
  const xs = Array.from({length: 32}, (_, i) => (i - 16) / 8)
  const loss = (idx: number[], slope: number) => {
    const x = tf.tensor1d(idx.map((i) => xs[i]))
    return {x, fn: () => tf.mean(tf.square(tf.sub(tf.mul(x, w), tf.mul(x, slope)))) as tf.Scalar}
  }
  return {
    stage: 'operator', store, trainItems: 32, valItems: 32,
    trainLoss(idx) {
      const {x, fn} = loss(idx, 2)
      return {fn, dispose: () => x.dispose()}
    },
    valLoss(idx) {
      const {x, fn} = loss(idx, valSlope)
      const v = tf.tidy(() => fn().dataSync()[0])
      x.dispose()
      return v
    },
    dispose: () => store.dispose(),
  }
}

const config = (extra: Partial<UpsConfig['stages']> = {}): UpsConfig =>
  ({
    data: {task: 'burgers1d'}, latent: {dim: 4, tokens: 4}, operator: {pdet: {hidden_dim: 8, depths: [1], group_size: 4, num_heads: 2}},
    optimizer: {name: 'sgd', lr: 0.05, momentum: 0}, training: {batch_size: 8, grad_clip: null, ema_decay: 0.5},
    stages: {operator: {epochs: 8, patience: 2, ...extra.operator}},
  }) as UpsConfig

async function train(dir: string, valSlope: number, fault?: FaultPlan, cfg = config()) {
  const spec = linearSpec(valSlope)
  const records: EpochRecord[] = []
  const resumedWith: StoredEpochRecord[] = []
  try {
    const outcome = await runStage({
      spec, settings: resolveStage(cfg, 'operator'), checkpointsDir: dir, seed: 9, checkpointInterval: 1, globalStepOffset: 0,
      clock: () => 0, logger: quiet, fault, onEpoch: async (r) => void records.push(r), onResume: async (r) => void resumedWith.push(r),
    })
    return {outcome, records, resumedWith, w: spec.store.get('w').dataSync()[0]}
  } finally {
    spec.dispose()
  }
}

describe('stage loop', () => {
  it('stops early on the validation loss, not the training loss, and keeps the best-val weights', async (t) => {
    await useBackend('cpu')
    const dir = await tempDir(t)
    // Validation wants slope -2: every step towards 2 makes it worse, while the training loss falls.
    const {outcome, records} = await train(dir, -2)
    assert.equal(outcome.bestEpoch, 1)
    assert.equal(outcome.stoppedEarly, true)
    assert.equal(outcome.epochsDone, 3, 'patience 2: stops two epochs after the best')
    const trainLoss = records.map((r) => r.metrics['operator/loss']!)
    assert.ok(trainLoss[2] < trainLoss[0], 'the training loss kept falling')
    assert.deepEqual(records.map((r) => r.metrics['operator/epochs_since_improve']), [0, 1, 2])
    const best = await loadCheckpoint(join(dir, 'operator_best.ckpt'))
    assert.equal(best.epoch, 1)
    assert.equal(best.metadata?.val_loss, records[0].metrics['operator/val_loss'])
    // Same data for validation: no early stop, all epochs run.
    const dir2 = await tempDir(t)
    const same = await train(dir2, 2)
    assert.equal(same.outcome.stoppedEarly, false)
    assert.equal(same.outcome.epochsDone, 8)
    assert.ok(Math.abs(same.w - 2) < 0.05)
  })

  it('a run that fails after an epoch and resumes ends with the same weights; numbered checkpoints keep the last 3', async (t) => {
    await useBackend('cpu')
    const full = await tempDir(t)
    const ref = await train(full, 2, undefined, config({operator: {epochs: 5, patience: 0}}))
    const dir = await tempDir(t)
    await assert.rejects(train(dir, 2, {crashAfter: {stage: 'operator', epoch: 2}}, config({operator: {epochs: 5, patience: 0}})), /Simulated crash/)
    const resumed = await train(dir, 2, undefined, config({operator: {epochs: 5, patience: 0}}))
    assert.match(resumed.outcome.resumedFrom ?? '', /operator\.ckpt$/)
    assert.deepEqual(resumed.records.map((r) => r.epoch), [3, 4, 5])
    assert.equal(resumed.w, ref.w)
    assert.equal(resumed.outcome.hashes.last, ref.outcome.hashes.last)
    assert.equal(resumed.outcome.hashes.ema, ref.outcome.hashes.ema)
    const names = (await readdir(dir)).filter((n) => /_epoch\d+\.ckpt$/.test(n)).sort()
    assert.deepEqual(names, ['operator_epoch0003.ckpt', 'operator_epoch0004.ckpt', 'operator_epoch0005.ckpt'])
  })

  it('a kill at any point of the final epoch\'s checkpoint writes resumes to the same files as an uninterrupted run', async (t) => {
    await useBackend('cpu')
    const cfg = config({operator: {epochs: 3, patience: 0}})
    const ref = await tempDir(t)
    await train(ref, 2, undefined, cfg)
    const onDisk = async (d: string, name: string) => (await loadCheckpoint(join(d, name))).manifest.weightsSha256
    // Early stop (val slope -2, patience 2) also ends the stage at epoch 3, not by the epoch count.
    const stopRef = await tempDir(t)
    await train(stopRef, -2)
    for (const point of KILL_POINTS) {
      for (const [valSlope, refDir, c] of [[2, ref, cfg], [-2, stopRef, config()]] as const) {
        if (valSlope < 0 && point.endsWith('best')) continue // no new best after epoch 1 there
        const dir = await tempDir(t)
        // No kill function: the loop throws at the point, leaving the files a kill there would.
        await assert.rejects(train(dir, valSlope, {killAt: {stage: 'operator', epoch: 3, point}}, c), /Simulated kill at/)
        const resumed = await train(dir, valSlope, undefined, c)
        assert.ok(resumed.outcome.resumedFrom, point)
        for (const name of ['operator.ckpt', 'operator_best.ckpt', 'operator_ema.ckpt', 'operator_epoch0003.ckpt']) {
          assert.equal(await onDisk(dir, name), await onDisk(refDir, name), `${name} after a kill at ${point} (val slope ${valSlope})`)
        }
        assert.equal((await loadCheckpoint(join(dir, 'operator.ckpt'))).metadata?.kind, 'last')
        assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith('.')), [], `swap leftovers after ${point}`)
      }
    }
  })

  it('a kill after an epoch\'s checkpoint, before onEpoch: resume hands that epoch\'s record back (onResume), as onEpoch had it', async (t) => {
    await useBackend('cpu')
    const cfg = config({operator: {epochs: 3, patience: 0}})
    const ref = await train(await tempDir(t), 2, undefined, cfg)
    for (const [epoch, point] of [[2, 'after-last'], [3, 'after-last'], [3, 'swap-last'], [3, 'after-numbered']] as const) {
      const dir = await tempDir(t)
      await assert.rejects(train(dir, 2, {killAt: {stage: 'operator', epoch, point}}, cfg), /Simulated kill at/)
      const resumed = await train(dir, 2, undefined, cfg)
      // The clock is fixed at 0, so even the epoch times match.
      assert.deepEqual(resumed.resumedWith, [{...ref.records[epoch - 1], time_ms: 0}], `${point} of epoch ${epoch}`)
      assert.deepEqual(resumed.records.map((r) => r.epoch), epoch === 2 ? [3] : [], 'the lost epoch is not trained again')
    }
  })

  it('a NaN loss stops with the engine error and leaves the previous epoch checkpoint intact', async (t) => {
    await useBackend('cpu')
    const dir = await tempDir(t)
    await assert.rejects(train(dir, 2, {nanAt: {stage: 'operator', epoch: 2}}), (e: Error & {code?: string}) => e.code === 'TRAIN_NONFINITE' && /epoch 2, step 5/.test(e.message))
    const last = await loadCheckpoint(join(dir, 'operator.ckpt'))
    assert.equal(last.epoch, 1)
    assert.equal(last.step, 4)
  })
})
