import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import * as tf from '@tensorflow/tfjs'

import {loadConfig, resolveStage, type StageName, type UpsConfig} from '../../../src/config/index.js'
import {buildMeasureReplica, type MeasureReplicaArgs} from '../../../src/pipeline/measure.js'
import type {DataShape} from '../../../src/pipeline/estimate-math.js'
import {Optimizer} from '../../../src/training/optim.js'
import {dataParallelStep, ReplicaPool, resolveWorkers, splitShares} from '../../../src/training/parallel/index.js'
import {Rng} from '../../../src/training/rng.js'
import {optimizerConfig} from '../../../src/training/stages/loop.js'
import {tempDir} from '../../helpers.js'
import {tinyConfig} from '../../e2e/train-fixtures.js'
import {useBackend} from '../training/helpers.js'

describe('replica count', () => {
  it('auto is min(cores, accum_steps) on wasm/cpu and 1 on GPU backends; explicit values cap at accum_steps', () => {
    const base = {setting: undefined, backend: 'wasm', accumSteps: 4, cpus: 2}
    assert.equal(resolveWorkers(base).replicas, 2)
    assert.equal(resolveWorkers({...base, cpus: 16}).replicas, 4)
    assert.equal(resolveWorkers({...base, accumSteps: 1}).replicas, 1)
    assert.equal(resolveWorkers({...base, backend: 'webgpu'}).replicas, 1)
    assert.equal(resolveWorkers({...base, backend: 'tensorflow-gpu', setting: 3}).replicas, 1)
    assert.equal(resolveWorkers({...base, backend: 'cpu', setting: 1}).replicas, 1)
    assert.deepEqual(resolveWorkers({...base, setting: 8}), {replicas: 4, reason: 'training.workers 8 capped at accum_steps 4'})
    assert.equal(resolveWorkers({...base, setting: 1, envOverride: '3'}).replicas, 3)
    assert.throws(() => resolveWorkers({...base, envOverride: 'two'}), (e: Error & {code?: string}) => e.code === 'TRAIN_WORKERS_INVALID')
  })

  it('shares are contiguous, main first, never more replicas than micro-batches', () => {
    assert.deepEqual(splitShares(4, 2), [[0, 2], [2, 4]])
    assert.deepEqual(splitShares(3, 2), [[0, 2], [2, 3]])
    assert.deepEqual(splitShares(1, 2), [[0, 1]])
    assert.deepEqual(splitShares(5, 3), [[0, 2], [2, 4], [4, 5]])
  })
})

const SHAPE: DataShape = {trainSamples: 8, valSamples: 2, evalSamples: 2, frames: 6, grid: [32], channels: 1, source: 'config'}

async function tinyUpsConfig(dir: string): Promise<UpsConfig> {
  await writeFile(join(dir, 'tiny.yaml'), tinyConfig(join(dir, 'data'), ''))
  return (await loadConfig(join(dir, 'tiny.yaml'))).config
}

/** One optimizer step from the same initial weights: the main thread alone, or with a pool. */
async function stepOnce(args: MeasureReplicaArgs, pool: ReplicaPool | null, steps = 1): Promise<Float32Array[]> {
  const {spec, free} = buildMeasureReplica(args)
  const settings = resolveStage(args.config, args.stage)
  const optimizer = new Optimizer(spec.store, optimizerConfig(settings))
  const rng = new Rng(77)
  // Four distinct micro-batches of 3 items each.
  const group = [[0, 1, 2], [3, 4, 5], [6, 7, 0], [1, 3, 5]]
  try {
    for (let s = 1; s <= steps; s++) await dataParallelStep(spec, group, rng, pool, {optimizer, clipNorm: settings.grad_clip, context: {stage: args.stage, epoch: 1, step: s}})
    return spec.store.entries().map(([, v]) => v.dataSync() as Float32Array)
  } finally {
    optimizer.dispose()
    free()
  }
}

describe('data-parallel step', () => {
  for (const stage of ['operator', 'diff_residual'] as StageName[]) {
    it(`${stage}: 2 replicas give the main-thread step's weights (~1e-6), and repeat bit for bit`, async (t) => {
      await useBackend('wasm')
      const config = await tinyUpsConfig(await tempDir(t))
      const args: MeasureReplicaArgs = {stage, config, shape: SHAPE, rngState: new Rng(5).getState()}
      const reference = await stepOnce(args, null, 2)
      const recipe = {module: new URL('../../../src/pipeline/measure.ts', import.meta.url).href, export: 'buildMeasureReplica', args}
      const probe = buildMeasureReplica(args)
      const pool = await ReplicaPool.start({workers: 1, backend: 'wasm', recipe, store: probe.spec.store})
      probe.free()
      try {
        assert.equal(pool.replicas, 2)
        const a = await stepOnce(args, pool, 2)
        const b = await stepOnce(args, pool, 2)
        let maxDiff = 0
        let moved = 0
        const initial = buildMeasureReplica(args)
        const init = initial.spec.store.entries().map(([, v]) => v.dataSync() as Float32Array)
        initial.free()
        a.forEach((w, i) => w.forEach((x, j) => {
          maxDiff = Math.max(maxDiff, Math.abs(x - reference[i][j]) / Math.max(1, Math.abs(reference[i][j])))
          if (x !== init[i][j]) moved += 1
        }))
        assert.ok(moved > 0, 'the step changed the weights')
        if (process.env.UPS_TEST_DEBUG) process.stderr.write(`${stage} max relative difference ${maxDiff}\n`)
        assert.ok(maxDiff < 1e-6, `max relative difference ${maxDiff}`)
        assert.deepEqual(a.map((w) => Array.from(w)), b.map((w) => Array.from(w)), 'two parallel runs are bit-identical')
      } finally {
        await pool.close()
      }
      assert.equal(tf.getBackend(), 'wasm')
    })
  }
})
