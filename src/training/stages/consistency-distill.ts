/**
 * Stage `consistency_distill`: a one-step student distilled from the corrector's multi-step
 * sampling (training.distill_num_taus teacher steps), operator and teacher frozen.
 */
import * as tf from '@tensorflow/tfjs'

import type {ConsistencyStudent} from '../models/consistency.js'
import type {ResidualCorrector} from '../models/corrector.js'
import type {LatentOperator} from '../models/operator.js'
import type {LatentPairs} from './latent-items.js'
import {residualBatch} from './operator.js'
import {readScalar} from '../step.js'
import type {StageSpec} from './types.js'

export function consistencyStage(
  student: ConsistencyStudent,
  teacher: ResidualCorrector,
  op: LatentOperator,
  train: LatentPairs,
  val: LatentPairs,
  dt: number,
  teacherSteps: number,
): StageSpec {
  return {
    stage: 'consistency_distill',
    store: student.store,
    trainItems: train.count,
    valItems: val.count,
    trainLoss(indices, rng) {
      const {cond, residual} = residualBatch(op, train, indices, dt)
      const loss = student.distillationLossFn(teacher, cond, residual, rng, teacherSteps)
      return {fn: loss, dispose: () => (loss.dispose(), tf.dispose([cond, residual]))}
    },
    async valLoss(indices, rng) {
      const {cond, residual} = residualBatch(op, val, indices, dt)
      const loss = student.distillationLossFn(teacher, cond, residual, rng, teacherSteps, {training: false})
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
