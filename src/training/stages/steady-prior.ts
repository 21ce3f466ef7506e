/** Stage `steady_prior`: z_t -> z_last (the trajectory's late-time state), same loss as the operator. */
import * as tf from '@tensorflow/tfjs'

import {type LossWeights, trainingLoss} from '../losses.js'
import type {SteadyPrior} from '../models/steady-prior.js'
import type {LatentPairs} from './latent-items.js'
import {readScalar} from '../step.js'
import type {StageSpec} from './types.js'

export function steadyPriorStage(prior: SteadyPrior, train: LatentPairs, val: LatentPairs, lambdas: LossWeights): StageSpec {
  return {
    stage: 'steady_prior',
    store: prior.store,
    trainItems: train.count,
    valItems: val.count,
    trainLoss(indices, rng) {
      const {z0, z1} = train.batch(indices)
      const ctx = {training: true, rng}
      return {fn: () => trainingLoss(prior.forward(z0, ctx), z1, lambdas), dispose: () => tf.dispose([z0, z1])}
    },
    async valLoss(indices) {
      const {z0, z1} = val.batch(indices)
      try {
        return await readScalar(() => trainingLoss(prior.forward(z0), z1, lambdas))
      } finally {
        tf.dispose([z0, z1])
      }
    },
    dispose: () => undefined,
  }
}
