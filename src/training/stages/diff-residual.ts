/** Stage `diff_residual`: the flow-matching corrector on r = z1 - op(z0), with the operator frozen. */
import * as tf from '@tensorflow/tfjs'

import type {ResidualCorrector} from '../models/corrector.js'
import type {LatentOperator} from '../models/operator.js'
import type {LatentPairs} from './latent-items.js'
import {residualBatch} from './operator.js'
import {readScalar} from '../step.js'
import type {StageSpec} from './types.js'

export function diffResidualStage(corrector: ResidualCorrector, op: LatentOperator, train: LatentPairs, val: LatentPairs, dt: number): StageSpec {
  return {
    stage: 'diff_residual',
    store: corrector.store,
    trainItems: train.count,
    valItems: val.count,
    trainLoss(indices, rng) {
      const {cond, residual} = residualBatch(op, train, indices, dt)
      const loss = corrector.lossFn(cond, residual, rng)
      return {fn: loss, dispose: () => (loss.dispose(), tf.dispose([cond, residual]))}
    },
    async valLoss(indices, rng) {
      const {cond, residual} = residualBatch(op, val, indices, dt)
      const loss = corrector.lossFn(cond, residual, rng, {training: false})
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
