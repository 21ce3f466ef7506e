/** Stage `operator`: one-step latent prediction z_{t+1} = op(z_t, dt) on pairs from the latent cache. */
import * as tf from '@tensorflow/tfjs'

import {type LossWeights, trainingLoss} from '../losses.js'
import type {LatentOperator} from '../models/operator.js'
import type {Ctx} from '../layers.js'
import {type LatentPairs, streamedItems} from './latent-items.js'
import type {Rng} from '../rng.js'
import {readScalar} from '../step.js'
import type {StageSpec} from './types.js'

/**
 * A stage that regresses z1 from z0 with the training loss (operator: the next state;
 * steady_prior: the late-time state): the same batches, train and validation, with its forward.
 */
export function latentRegressionStage(
  stage: StageSpec['stage'],
  store: StageSpec['store'],
  forward: (z0: tf.Tensor3D, ctx?: Ctx) => tf.Tensor,
  train: LatentPairs,
  val: LatentPairs,
  lambdas: LossWeights,
): StageSpec {
  return {
    stage,
    store,
    trainItems: train.count,
    valItems: val.count,
    ...streamedItems(train.access, train.perRef ?? 0),
    trainLoss(indices, rng) {
      const {z0, z1} = train.batch(indices)
      const ctx = {training: true, rng}
      return {fn: () => trainingLoss(forward(z0, ctx), z1, lambdas), dispose: () => tf.dispose([z0, z1])}
    },
    async valLoss(indices) {
      const {z0, z1} = val.batch(indices)
      try {
        return await readScalar(() => trainingLoss(forward(z0), z1, lambdas))
      } finally {
        tf.dispose([z0, z1])
      }
    },
    dispose: () => undefined,
  }
}

export function operatorStage(op: LatentOperator, train: LatentPairs, val: LatentPairs, dt: number, lambdas: LossWeights): StageSpec {
  return latentRegressionStage('operator', op.store, (z0, ctx) => op.forward(z0, dt, ctx), train, val, lambdas)
}

/**
 * cond = op(z0) without gradient and residual = (z1 - cond) / scale: the data of the corrector
 * stages, whose residuals are standardised by the operator's residual RMS (residualScale).
 */
export function residualBatch(op: LatentOperator, pairs: LatentPairs, indices: number[], dt: number, scale = 1): {cond: tf.Tensor3D; residual: tf.Tensor3D} {
  const {z0, z1} = pairs.batch(indices)
  const out = tf.tidy(() => {
    const cond = op.forward(z0, dt)
    return {cond, residual: tf.div(tf.sub(z1, cond), scale) as tf.Tensor3D}
  })
  tf.dispose([z0, z1])
  return out
}

/** Training items the residual scale is measured over (the first ones: deterministic). */
export const RESIDUAL_SCALE_ITEMS = 1024

/**
 * RMS of the trained operator's residual z1 - op(z0) over the first training pairs. The
 * corrector stages learn residual / scale: their flow starts from unit noise, and a residual a
 * hundred times smaller than that noise left an undertrained corrector adding noise a hundred
 * times the operator's error (one-step nRMSE 1.6 against 0.03 for persistence).
 */
export async function residualScale(op: LatentOperator, pairs: LatentPairs, dt: number, batchSize = 64): Promise<number> {
  const n = Math.min(pairs.count, RESIDUAL_SCALE_ITEMS)
  let sum = 0
  let count = 0
  for (let start = 0; start < n; start += batchSize) {
    const indices = Array.from({length: Math.min(batchSize, n - start)}, (_, i) => start + i)
    const {cond, residual} = residualBatch(op, pairs, indices, dt)
    const sq = tf.tidy(() => tf.sum(tf.square(residual)))
    try {
      sum += (await sq.data())[0]
      count += residual.size
    } finally {
      tf.dispose([cond, residual, sq])
    }
  }
  const rms = count > 0 ? Math.sqrt(sum / count) : 1
  return Number.isFinite(rms) && rms > 0 ? rms : 1
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
  data: {train: LatentPairs; val: LatentPairs; dt: number; scale?: number},
): StageSpec {
  return {
    stage,
    store,
    trainItems: data.train.count,
    valItems: data.val.count,
    ...streamedItems(data.train.access, data.train.perRef ?? 0),
    trainLoss(indices, rng) {
      const {cond, residual} = residualBatch(op, data.train, indices, data.dt, data.scale)
      const loss = lossFn(cond, residual, rng, true)
      return {fn: loss, dispose: () => (loss.dispose(), tf.dispose([cond, residual]))}
    },
    async valLoss(indices, rng) {
      const {cond, residual} = residualBatch(op, data.val, indices, data.dt, data.scale)
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
