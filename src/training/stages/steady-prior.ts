/** Stage `steady_prior`: z_t -> z_last (the trajectory's late-time state), same loss as the operator. */
import type {LossWeights} from '../losses.js'
import type {SteadyPrior} from '../models/steady-prior.js'
import type {LatentPairs} from './latent-items.js'
import {latentRegressionStage} from './operator.js'
import type {StageSpec} from './types.js'

export function steadyPriorStage(prior: SteadyPrior, train: LatentPairs, val: LatentPairs, lambdas: LossWeights): StageSpec {
  return latentRegressionStage('steady_prior', prior.store, (z0, ctx) => prior.forward(z0, ctx), train, val, lambdas)
}
