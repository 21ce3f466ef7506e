import assert from 'node:assert/strict'
import {it} from 'node:test'

import * as tf from '@tensorflow/tfjs'

import {trainingLoss} from '../../../src/training/losses.js'
import {LatentOperator} from '../../../src/training/models/operator.js'
import {Optimizer} from '../../../src/training/optim.js'
import {ParamStore} from '../../../src/training/params.js'
import {Rng} from '../../../src/training/rng.js'
import {trainStep} from '../../../src/training/step.js'
import {randn, useBackend} from './helpers.js'

it('the latent operator overfits a tiny synthetic batch (loss drops more than 10x below persistence, its starting point) on wasm', async () => {
  await useBackend('wasm')
  const rng = new Rng(11)
  const store = new ParamStore(new Rng(12))
  const op = new LatentOperator(store, {inputDim: 8, hiddenDim: 16, depths: [1, 1], groupSize: 8, numHeads: 2, mlpRatio: 2, dropout: 0, tokens: 8, timeEmbedDim: 8})
  const zr = randn(rng, [4, 8, 8]) as tf.Tensor3D
  // Centred per token, as the autoencoder's latents are.
  const z0 = tf.sub(zr, tf.mean(zr, -1, true)) as tf.Tensor3D
  // A smooth, learnable map: a token shift plus a damped copy.
  const z1 = tf.add(tf.mul(z0, 0.8), tf.mul(tf.concat([z0.slice([0, 1, 0], [4, 7, 8]), z0.slice([0, 0, 0], [4, 1, 8])], 1), 0.3)) as tf.Tensor3D
  const optimizer = new Optimizer(store, {type: 'adam', lr: 1e-2})
  const losses: number[] = []
  for (let step = 0; step < 300; step++) {
    const r = trainStep({store, optimizer, lossFns: [() => trainingLoss(op.forward(z0, 0.05), z1)], context: {stage: 'operator', epoch: 0, step}})
    losses.push(r.loss)
  }
  const first = losses[0]
  const last = Math.min(...losses.slice(-10))
  assert.ok(losses.every(Number.isFinite))
  assert.ok(last < first / 10, `loss went from ${first} to ${last}`)
})
