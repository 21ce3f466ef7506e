/** Stage `operator`: one-step latent prediction z_{t+1} = op(z_t, dt) on pairs from the latent cache. */
import * as tf from '@tensorflow/tfjs'

import {type LossWeights, trainingLoss} from '../losses.js'
import type {LatentOperator} from '../models/operator.js'
import type {LatentPairs} from './latent-items.js'
import type {Rng} from '../rng.js'
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

/** A loss over (cond, residual) batches; `training` is false for validation (no dropout). */
export type ResidualLossFn = (cond: tf.Tensor3D, residual: tf.Tensor3D, rng: Rng, training: boolean) => (() => tf.Scalar) & {dispose(): void}

/**
 * The spec of a stage trained on the frozen operator's residuals (diff_residual,
 * consistency_distill): the same batches, train and validation, with its own loss.
 */
export function residualStage(
  stage: StageSpec['stage'],
  store: StageSpec['store'],
  lossFn: ResidualLossFn,
  op: LatentOperator,
  data: {train: LatentPairs; val: LatentPairs; dt: number},
): StageSpec {
  return {
    stage,
    store,
    trainItems: data.train.count,
    valItems: data.val.count,
    trainLoss(indices, rng) {
      const {cond, residual} = residualBatch(op, data.train, indices, data.dt)
      const loss = lossFn(cond, residual, rng, true)
      return {fn: loss, dispose: () => (loss.dispose(), tf.dispose([cond, residual]))}
    },
    async valLoss(indices, rng) {
      const {cond, residual} = residualBatch(op, data.val, indices, data.dt)
      const loss = lossFn(cond, residual, rng, false)
      try {
        return await readScalar(() => loss())
      } finally {
        loss.dispose()
        tf.dispose([cond, residual])
      }
    },
    dispose: () => undefined,
  }
}
