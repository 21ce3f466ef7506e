/**
 * The trained surrogate for evaluation and inference, rebuilt from a run's checkpoints folder
 * (the `_best` weights of each stage plus checkpoints/metadata.json) without the training data.
 * Plain Float32Arrays in and out, so callers never touch tfjs tensors.
 */
import * as tf from '@tensorflow/tfjs'
import {join} from 'node:path'

import type {UpsConfig} from '../config/index.js'
import {ExitCode, UserError} from '../util/errors.js'
import {type BackendRequest, resolveBackend} from './backend.js'
import {loadCheckpoint} from './checkpoint.js'
import {readPipelineState} from './pipeline-state.js'
import {Rng} from './rng.js'
import {buildAutoencoder, buildCorrector, buildOperator, buildSteadyPrior, buildStudent, loadWeights} from './stages/build.js'

/** Latent tokens of a batch: [B, tokens, dim]. */
export interface Latent {
  data: Float32Array
  shape: [number, number, number]
}

/** Fields of a batch: [B, ...grid, C], channels-last. */
export interface Field {
  data: Float32Array
  shape: number[]
}

export type CorrectorNoise = 'mean' | 'sample'

export interface CorrectOptions {
  /** Fraction of the sampled residual added to the prediction (default 1: the full correction). */
  tau?: number
  /** Euler steps of the teacher's sampling (default training.distill_num_taus, else 4). */
  steps?: number
  /**
   * Where sampling starts: 'mean' (default) from the noise distribution's mean, zero, which makes
   * the correction deterministic and, for a Gaussian residual, its conditional mean (the flow from
   * eps = 0 ends at the mean): the best point estimate for RMSE-type metrics. 'sample' from a
   * seeded draw: one sample of the residual's distribution, whose spread adds error to a point
   * estimate (an undertrained corrector adds almost the whole noise, decoded).
   */
  noise?: CorrectorNoise
  /** Seed of the starting noise with noise 'sample' (default 0: deterministic). */
  seed?: number
  /** Sample with the multi-step teacher even when a distilled student exists. */
  useTeacher?: boolean
}

export interface Simulator {
  tasks: string[]
  gridShape: number[]
  channels: number
  tokens: number
  dim: number
  /** Time between frames the operator was trained on. */
  dt: number
  normStats: Record<string, {mean: number[]; std: number[]}>
  /** sha256 of weights.bin of each loaded `<stage>_best.ckpt`. */
  hashes: Partial<Record<'autoencoder' | 'operator' | 'diff_residual' | 'consistency_distill' | 'steady_prior', string>>
  /** True when a consistency-distilled student does the correction in one step. */
  distilled: boolean
  /** Physical fields [B, ...grid, C] -> latents (normalised with the task's train statistics first, unless normalized). */
  encode(u: Float32Array, shape: number[], options?: {task?: string; normalized?: boolean}): Promise<Latent>
  /** Latents -> physical fields (or normalised ones with normalized: true). */
  decode(z: Latent, options?: {task?: string; normalized?: boolean}): Promise<Field>
  /** One operator step z_t -> z_{t+dt} (dt defaults to the training dt). */
  step(z: Latent, dt?: number): Promise<Latent>
  /** The corrector applied to an operator prediction: zPred + tau * sampled residual. Null without a trained corrector. */
  correct: ((zPred: Latent, options?: CorrectOptions) => Promise<Latent>) | null
  /** The steady prior's late-time estimate of z, null when that stage was not trained. */
  steady: ((z: Latent) => Promise<Latent>) | null
  dispose(): void
}

/**
 * Runs fn in a tidy scope (freeing every intermediate tensor) and reads its result asynchronously:
 * every backend reads that way, and webgpu under Node only that way.
 */
async function run(fn: () => tf.Tensor): Promise<{data: Float32Array; shape: number[]}> {
  const t = tf.tidy(fn)
  try {
    return {data: (await t.data()) as Float32Array, shape: [...t.shape]}
  } finally {
    t.dispose()
  }
}

const latent = async (fn: () => tf.Tensor): Promise<Latent> => {
  const r = await run(fn)
  return {data: r.data, shape: r.shape as Latent['shape']}
}

const exists = async (path: string): Promise<boolean> => loadCheckpoint(path).then(() => true, () => false)

export async function loadSimulator(config: UpsConfig, checkpointsDir: string, options: {backend?: BackendRequest} = {}): Promise<Simulator> {
  if (options.backend) await resolveBackend(options.backend)
  const state = await readPipelineState(checkpointsDir)
  if (!state?.data) {
    throw new UserError(`${checkpointsDir} has no metadata.json with the data layout: it is not a trained run's checkpoints folder.`, {
      code: 'SIM_NO_METADATA',
      hint: 'Point at <run_dir>/checkpoints of a run trained with `ups train`.',
      exitCode: ExitCode.USAGE,
    })
  }
  const d = state.data
  const seed = config.seed ?? 0
  const best = (stage: string): string => join(checkpointsDir, `${stage}_best.ckpt`)
  const ae = buildAutoencoder(config, d.grid, d.channels, seed)
  const op = buildOperator(config, seed)
  const hashes: Simulator['hashes'] = {}
  hashes.autoencoder = await loadWeights(ae.store, best('autoencoder'))
  hashes.operator = await loadWeights(op.store, best('operator'))
  const teacher = (await exists(best('diff_residual'))) ? buildCorrector(config, seed) : null
  if (teacher) hashes.diff_residual = await loadWeights(teacher.store, best('diff_residual'))
  const student = teacher && (await exists(best('consistency_distill'))) ? buildStudent(config, seed) : null
  if (student) hashes.consistency_distill = await loadWeights(student.store, best('consistency_distill'))
  const prior = (await exists(best('steady_prior'))) ? buildSteadyPrior(config, seed) : null
  if (prior) hashes.steady_prior = await loadWeights(prior.store, best('steady_prior'))

  const {tokens, dim} = config.latent
  const stats = (task?: string) => {
    const s = d.norm_stats[task ?? d.tasks[0]]
    if (!s) throw new UserError(`No normalisation statistics for task ${task}; this run trained on ${d.tasks.join(', ')}.`, {code: 'SIM_UNKNOWN_TASK', exitCode: ExitCode.USAGE})
    return s
  }
  const C = d.channels
  const zTensor = (z: Latent): tf.Tensor3D => tf.tensor3d(z.data, z.shape)
  const teacherSteps = config.training?.distill_num_taus ?? 4
  const residualScale = state.stages.diff_residual?.residual_scale ?? 1

  return {
    tasks: d.tasks, gridShape: d.grid, channels: C, tokens, dim, dt: d.dt,
    normStats: Object.fromEntries(Object.entries(d.norm_stats).map(([k, v]) => [k, {mean: v.mean, std: v.std}])),
    hashes, distilled: Boolean(student),
    async encode(u, shape, o = {}) {
      const x = Float32Array.from(u)
      if (!o.normalized) {
        const s = stats(o.task)
        for (let j = 0; j < x.length; j++) x[j] = (x[j] - s.mean[j % C]) / (s.std[j % C] > 0 ? s.std[j % C] : 1)
      }
      return latent(() => ae.encode(tf.tensor(x, shape)))
    },
    async decode(z, o = {}) {
      const out = await run(() => ae.decode(zTensor(z)))
      if (!o.normalized) {
        const s = stats(o.task)
        for (let j = 0; j < out.data.length; j++) out.data[j] = out.data[j] * (s.std[j % C] > 0 ? s.std[j % C] : 1) + s.mean[j % C]
      }
      return out
    },
    step: (z, dt = d.dt) => latent(() => op.forward(zTensor(z), dt)),
    correct: teacher
      ? (zPred, o = {}) =>
          latent(() => {
            const cond = zTensor(zPred)
            const eps = o.noise === 'sample' ? teacher.noise(zPred.shape, new Rng(o.seed ?? 0)) : tf.zeros<tf.Rank.R3>(zPred.shape)
            const r = student && !o.useTeacher ? student.sample(cond, eps) : teacher.sample(cond, eps, o.steps ?? teacherSteps)
            // The correctors learned residual / residual_scale (runs before it was recorded: 1).
            return tf.add(cond, tf.mul(r, (o.tau ?? 1) * residualScale))
          })
      : null,
    steady: prior ? (z) => latent(() => prior.forward(zTensor(z))) : null,
    dispose() {
      ae.dispose()
      op.dispose()
      for (const s of [ae.store, op.store, teacher?.store, student?.store, prior?.store]) s?.dispose()
    },
  }
}
