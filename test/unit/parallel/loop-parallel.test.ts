import assert from 'node:assert/strict'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {resolveStage, type UpsConfig} from '../../../src/config/index.js'
import {loadCheckpoint} from '../../../src/training/checkpoint.js'
import {ReplicaPool} from '../../../src/training/parallel/index.js'
import {type FaultPlan, runStage} from '../../../src/training/stages/loop.js'
import {tempDir} from '../../helpers.js'
import {buildLinearReplica, type LinearArgs, linearRecipe} from '../../fixtures/linear-replica.js'
import {useBackend} from '../training/helpers.js'

const quiet = {info: () => undefined, warn: () => undefined}

const config = {
  data: {task: 'burgers1d'}, latent: {dim: 4, tokens: 4}, operator: {pdet: {hidden_dim: 8, depths: [1], group_size: 4, num_heads: 2}},
  optimizer: {name: 'adamw', lr: 0.05}, training: {batch_size: 4, accum_steps: 3, grad_clip: 1.0, ema_decay: 0.5},
  stages: {operator: {epochs: 4, patience: 0}},
} as UpsConfig

/** Trains the linear fixture stage with `replicas` (1: the main thread, no pool). */
async function train(dir: string, replicas: number, fault?: FaultPlan, args: LinearArgs = {valSlope: 2}) {
  const {spec, free} = buildLinearReplica(args)
  const pool = replicas > 1 ? await ReplicaPool.start({workers: replicas - 1, backend: 'cpu', recipe: linearRecipe(args), store: spec.store}) : undefined
  try {
    const outcome = await runStage({
      spec, settings: resolveStage(config, 'operator'), checkpointsDir: dir, seed: 9, checkpointInterval: 1, globalStepOffset: 0,
      clock: () => 0, logger: quiet, fault, pool,
    })
    return {outcome, w: Array.from(spec.store.get('w').dataSync())}
  } finally {
    await pool?.close()
    free()
  }
}

describe('stage loop with data-parallel replicas', () => {
  it('2 replicas: a crashed run and a run killed mid-commit resume to bit-identical files; repeated runs agree bit for bit', async (t) => {
    await useBackend('cpu')
    const ref = await tempDir(t)
    const full = await train(ref, 2)
    const again = await train(await tempDir(t), 2)
    assert.equal(again.outcome.hashes.last, full.outcome.hashes.last, 'two uninterrupted parallel runs')
    const single = await train(await tempDir(t), 1)
    assert.notEqual(single.outcome.hashes.last, full.outcome.hashes.last, 'per-micro-batch seeds differ from the shared stream of 1 replica')

    const crashed = await tempDir(t)
    await assert.rejects(train(crashed, 2, {crashAfter: {stage: 'operator', epoch: 2}}), /Simulated crash/)
    const resumed = await train(crashed, 2)
    assert.match(resumed.outcome.resumedFrom ?? '', /operator\.ckpt$/)
    assert.deepEqual(resumed.w, full.w)
    assert.equal(resumed.outcome.hashes.last, full.outcome.hashes.last)
    assert.equal(resumed.outcome.hashes.ema, full.outcome.hashes.ema)

    const killed = await tempDir(t)
    await assert.rejects(train(killed, 2, {killAt: {stage: 'operator', epoch: 3, point: 'swap-last'}}), /Simulated kill at/)
    await train(killed, 2)
    for (const name of ['operator.ckpt', 'operator_best.ckpt', 'operator_ema.ckpt', 'operator_epoch0004.ckpt']) {
      assert.equal((await loadCheckpoint(join(killed, name))).manifest.weightsSha256, (await loadCheckpoint(join(ref, name))).manifest.weightsSha256, name)
    }
  })

  it('a failing or vanished worker ends the stage with a UserError naming stage, epoch and step (no hang)', async (t) => {
    await useBackend('cpu')
    const dir = await tempDir(t)
    await assert.rejects(train(dir, 2, undefined, {valSlope: 2, failInWorker: true}), (e: Error & {code?: string; exitCode?: number}) => {
      assert.equal(e.code, 'TRAIN_REPLICA_FAILED')
      assert.match(e.message, /replica 1 \(worker thread\) failed in stage operator, epoch 1, step 1: simulated replica failure/)
      return true
    })
    await assert.rejects(loadCheckpoint(join(dir, 'operator.ckpt')))
    await assert.rejects(train(await tempDir(t), 2, undefined, {valSlope: 2, exitInWorker: true}), (e: Error & {code?: string}) => {
      assert.equal(e.code, 'TRAIN_REPLICA_FAILED')
      assert.match(e.message, /epoch 1, step 1: its thread exited \(code 7\)/)
      return true
    })
  })

  it('a replica whose model does not match the main one is refused at start', async () => {
    await useBackend('cpu')
    const {spec, free} = buildLinearReplica({valSlope: 2})
    try {
      await assert.rejects(
        ReplicaPool.start({workers: 1, backend: 'cpu', recipe: linearRecipe({valSlope: 2, mismatch: true}), store: spec.store}),
        /do not match the main model/,
      )
      await assert.rejects(ReplicaPool.start({workers: 1, backend: 'cpu', recipe: {...linearRecipe({valSlope: 2}), export: 'nope'}, store: spec.store}), /has no function nope/)
    } finally {
      free()
    }
  })
})
