/**
 * Builds the spec of one stage: its trainable model, the frozen upstream models loaded from their
 * `_best` checkpoints, and its items. Returns null for the latent stages when nothing needs them.
 */
import type {StageName, UpsConfig} from '../../config/index.js'
import {ExitCode, UserError} from '../../util/errors.js'
import type {LatentSplit} from '../cache.js'
import type {SplitData, TrainingData} from '../data.js'
import type {LossWeights} from '../losses.js'
import {autoencoderStage} from './autoencoder.js'
import {buildAutoencoder, buildCorrector, buildOperator, buildSteadyPrior, buildStudent, loadWeights} from './build.js'
import {consistencyStage} from './consistency-distill.js'
import {diffResidualStage} from './diff-residual.js'
import {latentPairs} from './latent-items.js'
import {operatorStage, residualScale} from './operator.js'
import {steadyPriorStage} from './steady-prior.js'
import type {StageSpec} from './types.js'

export interface StageInputs {
  config: UpsConfig
  seed: number
  data: TrainingData
  latents: Map<SplitData, LatentSplit> | null
  checkpointsDir: string
  lambdas: LossWeights
  /** The residual scale recorded when diff_residual trained (consistency_distill reuses it). */
  residualScale?: number
}

export const bestPath = (dir: string, stage: StageName): string => `${dir}/${stage}_best.ckpt`

async function upstream(dir: string, needed: StageName, by: StageName, load: (path: string) => Promise<string>): Promise<void> {
  try {
    await load(bestPath(dir, needed))
  } catch (error) {
    const code = (error as UserError).code
    if (code !== 'CHECKPOINT_CORRUPT') throw error
    throw new UserError(`Stage ${by} needs the trained ${needed} (${bestPath(dir, needed)}): ${(error as Error).message}`, {
      code: 'TRAIN_UPSTREAM_MISSING',
      hint: `Train it first: \`ups train CONFIG --run-dir RUN --stage ${needed}\` (or --stage all), with stages.${needed}.epochs > 0.`,
      exitCode: ExitCode.USAGE,
    })
  }
}

/** The spec of `stage`, a function that frees every model it built, and what to record in the stage's state. */
export async function buildStage(stage: StageName, s: StageInputs): Promise<{spec: StageSpec; free: () => void; record?: {residual_scale: number}}> {
  const {config, seed, data, checkpointsDir: dir, lambdas} = s
  if (stage === 'autoencoder') {
    const ae = buildAutoencoder(config, data.gridShape, data.channels, seed)
    return {spec: autoencoderStage(ae, data, lambdas), free: () => (ae.dispose(), ae.store.dispose())}
  }
  const latents = s.latents!
  const next = (refs: typeof data.train) => latentPairs(refs, latents, 'next')
  const trainPairs = next(data.train)
  const valPairs = next(data.val)
  const op = stage === 'operator' || stage === 'diff_residual' || stage === 'consistency_distill' ? buildOperator(config, seed) : null
  const freeOp = (): void => {
    op?.dispose()
    op?.store.dispose()
  }
  if (stage === 'operator') return {spec: operatorStage(op!, trainPairs, valPairs, data.dt, lambdas), free: freeOp}
  if (stage === 'steady_prior') {
    const prior = buildSteadyPrior(config, seed)
    const spec = steadyPriorStage(prior, latentPairs(data.train, latents, 'last'), latentPairs(data.val, latents, 'last'), lambdas)
    return {spec, free: () => prior.store.dispose()}
  }
  await upstream(dir, 'operator', stage, (p) => loadWeights(op!.store, p))
  // Recorded when diff_residual first trained (a resume keeps it); measured otherwise.
  const scale = s.residualScale ?? (await residualScale(op!, trainPairs, data.dt))
  if (stage === 'diff_residual') {
    const corrector = buildCorrector(config, seed)
    return {spec: diffResidualStage(corrector, op!, trainPairs, valPairs, data.dt, scale), free: () => (freeOp(), corrector.store.dispose()), record: {residual_scale: scale}}
  }
  const teacher = buildCorrector(config, seed)
  await upstream(dir, 'diff_residual', stage, (p) => loadWeights(teacher.store, p))
  const student = buildStudent(config, seed)
  const steps = config.training?.distill_num_taus ?? 4
  return {
    spec: consistencyStage(student, teacher, op!, trainPairs, valPairs, data.dt, steps, scale, config.training?.distill_micro_batch ?? 0),
    free: () => (freeOp(), teacher.store.dispose(), student.store.dispose()),
  }
}
