/**
 * Stage `consistency_distill`: a one-step student distilled from the corrector's multi-step
 * sampling (training.distill_num_taus teacher steps), operator and teacher frozen.
 */
import type {ConsistencyStudent} from '../models/consistency.js'
import type {ResidualCorrector} from '../models/corrector.js'
import type {LatentOperator} from '../models/operator.js'
import type {LatentPairs} from './latent-items.js'
import {residualStage} from './operator.js'
import type {StageSpec} from './types.js'

export function consistencyStage(
  student: ConsistencyStudent,
  teacher: ResidualCorrector,
  op: LatentOperator,
  train: LatentPairs,
  val: LatentPairs,
  dt: number,
  teacherSteps: number,
  scale = 1,
  microBatch = 0,
): StageSpec {
  return residualStage(
    'consistency_distill',
    student.store,
    (cond, residual, rng, training) =>
      student.distillationLossFn(teacher, cond, residual, rng, teacherSteps, training ? {training: true, rng} : {training: false}, microBatch),
    op,
    {train, val, dt, scale},
  )
}
