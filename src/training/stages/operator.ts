/** Stage `operator`: one-step latent prediction z_{t+1} = op(z_t, dt) on pairs from the latent cache. */
import * as tf from '@tensorflow/tfjs'

import {type LossWeights, trainingLoss} from '../losses.js'
import type {LatentOperator} from '../models/operator.js'
import type {LatentPairs} from './latent-items.js'
import {readScalar} from '../step.js'
import type {StageSpec} from './types.js'

export function operatorStage(op: LatentOperator, train: LatentPairs, val: LatentPairs, dt: number, lambdas: LossWeights): StageSpec {
  return {
    stage: 'operator',
    store: op.store,
    trainItems: train.count,
    valItems: val.count,
    trainLoss(indices, rng) {
      const {z0, z1} = train.batch(indices)
      const ctx = {training: true, rng}
      return {fn: () => trainingLoss(op.forward(z0, dt, ctx), z1, lambdas), dispose: () => tf.dispose([z0, z1])}
    },
    async valLoss(indices) {
      const {z0, z1} = val.batch(indices)
      try {
        return await readScalar(() => trainingLoss(op.forward(z0, dt), z1, lambdas))
      } finally {
        tf.dispose([z0, z1])
      }
    },
    dispose: () => undefined,
  }
}

/** cond = op(z0) without gradient and residual = z1 - cond: the data of the corrector stages. */
export function residualBatch(op: LatentOperator, pairs: LatentPairs, indices: number[], dt: number): {cond: tf.Tensor3D; residual: tf.Tensor3D} {
  const {z0, z1} = pairs.batch(indices)
  const out = tf.tidy(() => {
    const cond = op.forward(z0, dt)
    return {cond, residual: tf.sub(z1, cond) as tf.Tensor3D}
  })
  tf.dispose([z0, z1])
  return out
}
