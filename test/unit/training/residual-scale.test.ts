import assert from 'node:assert/strict'
import {it} from 'node:test'

import * as tf from '@tensorflow/tfjs'

import {LatentOperator} from '../../../src/training/models/operator.js'
import {ParamStore} from '../../../src/training/params.js'
import {Rng} from '../../../src/training/rng.js'
import {residualBatch, residualScale} from '../../../src/training/stages/operator.js'
import type {LatentPairs} from '../../../src/training/stages/latent-items.js'
import {useBackend} from './helpers.js'

it('the correctors learn the operator residual divided by its RMS over the training pairs', async () => {
  await useBackend('cpu')
  const [T, D, count] = [4, 4, 70]
  const op = new LatentOperator(new ParamStore(new Rng(1)), {inputDim: D, hiddenDim: 8, depths: [1], groupSize: 4, numHeads: 2, mlpRatio: 2, dropout: 0, tokens: T})
  // An untrained operator is persistence, so its residual is z1 - z0: here +0.03 or -0.03 everywhere.
  const rng = new Rng(2)
  const z0 = rng.fillNormal(count * T * D)
  const pairs: LatentPairs = {
    count,
    batch: (indices) => ({
      z0: tf.tensor3d(indices.flatMap((i) => Array.from(z0.subarray(i * T * D, (i + 1) * T * D))), [indices.length, T, D]),
      z1: tf.tensor3d(indices.flatMap((i) => Array.from(z0.subarray(i * T * D, (i + 1) * T * D), (v) => v + (i % 2 ? 0.03 : -0.03))), [indices.length, T, D]),
    }),
  }
  const before = tf.memory().numTensors
  const scale = await residualScale(op, pairs, 0.1, 16)
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks')
  assert.ok(Math.abs(scale - 0.03) < 1e-6, `${scale}`)
  const {cond, residual} = residualBatch(op, pairs, [0, 1], 0.1, scale)
  // Standardised: +-1 instead of +-0.03.
  for (const v of residual.dataSync()) assert.ok(Math.abs(Math.abs(v) - 1) < 1e-4, `${v}`)
  tf.dispose([cond, residual])
  op.dispose()
})
