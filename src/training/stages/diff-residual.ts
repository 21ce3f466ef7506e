/** Stage `diff_residual`: the flow-matching corrector on r = (z1 - op(z0)) / scale, with the operator frozen. */
import type {ResidualCorrector} from '../models/corrector.js'
import type {LatentOperator} from '../models/operator.js'
import type {LatentPairs} from './latent-items.js'
import {residualStage} from './operator.js'
import type {StageSpec} from './types.js'

/** `scale`: the operator's residual RMS (residualScale); the corrector learns residual / scale. */
export function diffResidualStage(corrector: ResidualCorrector, op: LatentOperator, train: LatentPairs, val: LatentPairs, dt: number, scale = 1): StageSpec {
  return residualStage('diff_residual', corrector.store, (cond, residual, rng, training) => (training ? corrector.lossFn(cond, residual, rng) : corrector.lossFn(cond, residual, rng, {training: false})), op, {train, val, dt, scale})
}
