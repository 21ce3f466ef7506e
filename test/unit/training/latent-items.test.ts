import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {test} from 'node:test'

import * as tf from '@tensorflow/tfjs'

import type {LatentSplit} from '../../../src/training/cache.js'
import type {SplitData, TrajectoryRef} from '../../../src/training/data.js'
import {latentPairs} from '../../../src/training/stages/latent-items.js'
import {tempDir} from '../../helpers.js'

test('latent pairs over two tasks, the first cache in memory and the second on disk, read both', async (t) => {
  await tf.setBackend('cpu')
  const dir = await tempDir(t)
  // 2 trajectories x 2 frames x 1 token x 2 dims per task; values tell task, trajectory and frame apart.
  const values = (task: number) => Float32Array.from({length: 8}, (_, i) => 100 * task + i + 1)
  const shape: [number, number, number, number] = [2, 2, 1, 2]
  const split = (task: string): SplitData => ({task, split: 'train', data: new Float32Array(0), n: 2, frames: 2})
  const a = split('a')
  const b = split('b')
  const path = join(dir, 'latents.bin')
  await writeFile(path, Buffer.from(values(2).buffer))
  const latents = new Map<SplitData, LatentSplit>([
    [a, {task: 'a', split: 'train', data: values(1), shape}],
    [b, {task: 'b', split: 'train', data: new Float32Array(0), shape, file: {path, dtype: 'float32'}, blockTrajectories: 1}],
  ])
  const refs: TrajectoryRef[] = [{split: a, index: 0}, {split: a, index: 1}, {split: b, index: 0}, {split: b, index: 1}]
  const pairs = latentPairs(refs, latents, 'next')
  assert.equal(pairs.count, 4)
  const {z0, z1} = pairs.batch([0, 1, 2, 3])
  assert.deepEqual([...z0.dataSync()], [101, 102, 105, 106, 201, 202, 205, 206])
  assert.deepEqual([...z1.dataSync()], [103, 104, 107, 108, 203, 204, 207, 208])
  tf.dispose([z0, z1])
})
