/**
 * Builds every model of a config and times real training steps per enabled stage on synthetic
 * batches, on the local backend. It runs what training runs: the models come from the training
 * builders (stages/build.ts), the loss closures from the training stage specs (operator,
 * corrector, ...: including the frozen operator's forward pass the corrector stages make per
 * batch, input tensors built and freed per step, the configured loss weights), and each step is
 * the loop's own optimizerStep (accumulation, clipping, optimizer, EMA). Loaded lazily: it
 * imports tfjs.
 */
import {availableParallelism} from 'node:os'

import * as tf from '@tensorflow/tfjs'

import {resolveArchitecture, resolveStage, type StageName, type UpsConfig} from '../config/index.js'
import {resolveBackend, type BackendRequest} from '../training/backend.js'
import type {TrainingData} from '../training/data.js'
import {Optimizer} from '../training/optim.js'
import {describeReplicas, ReplicaPool, type ReplicaBuild, startStageReplicas, resolveWorkers, siblingModule} from '../training/parallel/index.js'
import {Rng, type RngState} from '../training/rng.js'
import {autoencoderStage} from '../training/stages/autoencoder.js'
import {buildAutoencoder, buildCorrector, buildOperator, buildSteadyPrior, buildStudent} from '../training/stages/build.js'
import {consistencyStage} from '../training/stages/consistency-distill.js'
import {diffResidualStage} from '../training/stages/diff-residual.js'
import type {LatentPairs} from '../training/stages/latent-items.js'
import {optimizerConfig, optimizerStep} from '../training/stages/loop.js'
import {operatorStage} from '../training/stages/operator.js'
import {steadyPriorStage} from '../training/stages/steady-prior.js'
import type {StageSpec} from '../training/stages/types.js'
import {Ema} from '../training/step.js'
import {setFusedKernels} from '../training/fused.js'
import {mergeMicroBatches, resolveMicroBatch} from '../training/micro-batch.js'
import {type DataShape, itemsPerEpoch, stepsPerEpochOf} from './estimate-math.js'
import {cachedKernelCount, kernelCountKey} from './kernel-cache.js'
import {enabledStagesOf} from './stages.js'
/** At least this many steps run before timing starts (the first ones compile kernels). */
export const WARMUP_STEPS = 2
/**
 * Warm-up then continues while the step time is still falling: on wasm/cpu it keeps dropping for
 * 20-40 steps (V8 and WebAssembly tier-up of the kernels and the JS around them, compiled in the
 * background), settling at half or less of the first steps' time, and small models drop again
 * later (the smoke config's operator: ~20 ms a step for 120 steps, then ~15). It stops when the
 * median of the last WARMUP_WINDOW steps is within WARMUP_SETTLED of the window before and the
 * steps so far span at least WARMUP_MIN_SPAN_MS, or at WARMUP_MAX_STEPS / WARMUP_BUDGET_MS
 * (large models: a few slow steps suffice), and never runs more steps than the stage will train.
 * What the warm-up steps cost beyond the settled time is charged once (warmupExtraMs), so the
 * estimate follows the measured curve rather than one point of it. Stopping at the first settled
 * window (as little as 0.1 s of steps) timed the one stage while the process was still compiling
 * in the background: estimates ran 1.15-1.45x over the smoke run.
 */
export const WARMUP_WINDOW = 10
export const WARMUP_SETTLED = 0.05
export const WARMUP_MIN_SPAN_MS = 2000
export const WARMUP_MAX_STEPS = 600
export const WARMUP_BUDGET_MS = 6000
/** Steps timed after warm-up; the median is the step time (robust to GC pauses and noisy neighbours). */
export const TIMED_STEPS = 9
/** Validation batches timed (forward only, as the loop's validation). */
const VAL_TIMED = 3

export interface ModelReport {
  stage: StageName
  kind: string
  params: number
  /** float32 activations kept for backward at the stage's batch size. */
  activationBytes: number
  /** weights + gradients + Adam moments (+ EMA) + activations. */
  memoryBytes: number
  /** Approximate FLOPs of one optimizer step (matMuls: forward x 3 for forward + backward). */
  flopsPerStep: number
  batchSize: number
  /** tf.profile kernels of one optimizer step as a GPU target runs it (null: not counted). */
  kernelsPerStep?: number | null
  /** tf.profile kernels of one validation (forward) batch. */
  forwardKernels?: number | null
  /** Rows per pass and passes per step under the GPU target's micro-batch policy. */
  microBatch?: {rows: number; passes: number; backend: string} | null
}

export interface StageMeasurement {
  stage: StageName
  batchSize: number
  /** Wall time of each step, in order (warm-up first). */
  stepMs: number[]
  warmupSteps: number
  /** The step time used: the median of the timed (post-warm-up) steps. */
  measuredMs: number
  /** What the warm-up steps cost beyond measuredMs each: training pays it once per stage. */
  warmupExtraMs: number
  /** Median wall time of one validation batch (forward pass, no gradients). */
  valBatchMs: number
  flopsPerStep: number
  /** Achieved GFLOP/s of the measured step. */
  gflops: number
  /** Data-parallel replicas the step ran on (as training would: training.workers). */
  replicas: number
}

export interface MeasureResult {
  backend: string
  models: ModelReport[]
  stages: StageMeasurement[]
}

export interface MeasureOptions {
  /** Time training steps per enabled stage (false: build models and count only). */
  measure: boolean
  /** Timed steps after warm-up (default TIMED_STEPS). */
  steps?: number
  /** Most warm-up steps (default WARMUP_MAX_STEPS; at least WARMUP_STEPS). */
  warmupSteps?: number
  /** Least wall time of warm-up steps, when the stage trains that long (default WARMUP_MIN_SPAN_MS). */
  minSpanMs?: number
  backend?: BackendRequest
  /** CPU cores for training.workers auto (default os.availableParallelism()). */
  cpus?: number
  /** UPS_TRAIN_WORKERS, when the caller honours it for training too. */
  workersOverride?: string
  /** Count kernels per step as this GPU backend would run the stage (its micro-batch policy, tfjs-op kernels). */
  countKernelsFor?: string
  /** Where counted kernels are kept between runs (kernel-cache.ts); absent: always counted. */
  kernelCacheFile?: string
  /** Monotonic milliseconds (performance.now). */
  now: () => number
  onProgress?: (line: string) => void
}

interface StageModel {
  report: Omit<ModelReport, 'memoryBytes'>
  spec: StageSpec
  dispose(): void
}

/** Flops of one forward pass through per-row MLPs with `params` weights over `rows` rows. */
const mlpFlops = (params: number, rows: number) => 2 * params * rows

const prod = (xs: number[]) => xs.reduce((a, c) => a * c, 1)

/** Latent pairs over `count` random (z_t, z_t+1) items, built into tensors per batch as the latent cache's are. */
function syntheticPairs(count: number, tokens: number, dim: number, rng: Rng): LatentPairs {
  const size = tokens * dim
  const z0 = rng.fillNormal(count * size)
  const z1 = rng.fillNormal(count * size)
  const fill = (src: Float32Array, indices: number[]) => {
    const out = new Float32Array(indices.length * size)
    indices.forEach((item, b) => out.set(src.subarray(item * size, (item + 1) * size), b * size))
    return out
  }
  return {
    count,
    batch: (indices) => ({z0: tf.tensor3d(fill(z0, indices), [indices.length, tokens, dim]), z1: tf.tensor3d(fill(z1, indices), [indices.length, tokens, dim])}),
  }
}

/** Enough random trajectories of the data's shape for one batch of frames. */
function syntheticFrames(shape: DataShape, batch: number, dt: number, rng: Rng): TrainingData {
  const frames = Math.max(1, shape.frames)
  const frameSize = prod(shape.grid) * shape.channels
  const n = Math.ceil(batch / frames)
  const split = {task: 'synthetic', split: 'train', data: rng.fillNormal(n * frames * frameSize), n, frames}
  const refs = Array.from({length: n}, (_, index) => ({split, index}))
  return {tasks: ['synthetic'], gridShape: shape.grid, channels: shape.channels, frames, frameSize, dt, normStats: {}, splits: [split], train: refs, val: refs, valSource: 'synthetic'}
}

function buildStage(stage: StageName, config: UpsConfig, shape: DataShape, rng: Rng): StageModel {
  const seed = config.seed ?? 0
  const s = resolveStage(config, stage)
  const b = s.batch_size
  const lambdas = {lambdaSpectral: config.training?.lambda_spectral ?? 0, lambdaRelative: config.training?.lambda_relative ?? 0}
  const dt = config.training?.dt ?? 0.1
  const frees: Array<() => void> = []
  const done = (kind: string, params: number, activationBytes: number, flopsPerStep: number, spec: StageSpec): StageModel => ({
    report: {stage, kind, params, activationBytes, flopsPerStep, batchSize: b},
    spec,
    dispose() {
      spec.dispose()
      for (const f of frees.reverse()) f()
    },
  })
  if (stage === 'autoencoder') {
    const ae = buildAutoencoder(config, shape.grid, shape.channels, seed)
    frees.push(() => (ae.dispose(), ae.store.dispose()))
    const p = ae.paramCount()
    const tokens = resolveArchitecture(config).latent.tokens
    return done(ae.kind, p, ae.activationBytes(b), 3 * mlpFlops(p, b * tokens), autoencoderStage(ae, syntheticFrames(shape, b, dt, rng), lambdas))
  }
  const op = buildOperator(config, seed)
  frees.push(() => (op.dispose(), op.store.dispose()))
  const {tokens, dim} = resolveArchitecture(config).latent
  const pairs = syntheticPairs(b, tokens, dim, rng)
  const opFwd = op.matmulFlops(b)
  switch (stage) {
    case 'operator':
      return done(op.kind, op.paramCount(), op.activationBytes(b), 3 * opFwd, operatorStage(op, pairs, pairs, dt, lambdas))
    case 'steady_prior': {
      const prior = buildSteadyPrior(config, seed)
      frees.push(() => prior.store.dispose())
      const p = prior.paramCount()
      return done(prior.kind, p, prior.activationBytes(b, tokens), 3 * mlpFlops(p, b * tokens), steadyPriorStage(prior, pairs, pairs, lambdas))
    }
    case 'diff_residual': {
      const c = buildCorrector(config, seed)
      frees.push(() => c.store.dispose())
      const p = c.paramCount()
      // Corrector forward + backward, plus the frozen operator's forward that makes the residual.
      return done(c.kind, p, c.activationBytes(b, tokens), 3 * mlpFlops(p, b * tokens) + opFwd, diffResidualStage(c, op, pairs, pairs, dt))
    }
    case 'consistency_distill': {
      const teacher = buildCorrector(config, seed)
      const student = buildStudent(config, seed)
      frees.push(() => (teacher.store.dispose(), student.store.dispose()))
      const p = student.paramCount()
      const steps = config.training?.distill_num_taus ?? 4
      // Student forward + backward, the teacher's Euler steps, one target evaluation, the operator's forward.
      const flops = 3 * mlpFlops(p, b * tokens) + steps * mlpFlops(teacher.paramCount(), b * tokens) + mlpFlops(p, b * tokens) + opFwd
      return done(student.kind, p, student.activationBytes(b, tokens), flops, consistencyStage(student, teacher, op, pairs, pairs, dt, steps, 1, config.training?.distill_micro_batch ?? 0))
    }
  }
}

export interface MeasureReplicaArgs {
  stage: StageName
  config: UpsConfig
  shape: DataShape
  rngState: RngState
}

/** Worker side of a measured data-parallel step: the same models and synthetic data as main. */
export function buildMeasureReplica(a: MeasureReplicaArgs): ReplicaBuild {
  const m = buildStage(a.stage, a.config, a.shape, new Rng(a.rngState))
  return {spec: m.spec, free: () => m.dispose()}
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

/** True when the median of the last `window` step times is within `tolerance` of the window before. */
export function stepTimeSettled(ms: number[], window: number, tolerance: number): boolean {
  return ms.length >= 2 * window && median(ms.slice(-window)) >= (1 - tolerance) * median(ms.slice(-2 * window, -window))
}

export async function measureModels(config: UpsConfig, shape: DataShape, options: MeasureOptions): Promise<MeasureResult> {
  const backend = await resolveBackend(options.measure || options.countKernelsFor ? (options.backend ?? 'auto') : 'cpu')
  const rng = new Rng(config.seed ?? 0)
  const models: ModelReport[] = []
  const stages: StageMeasurement[] = []
  for (const stage of enabledStagesOf(config)) {
    const rngState = rng.getState()
    const m = buildStage(stage, config, shape, rng)
    let pool: ReplicaPool | undefined
    try {
      const s = resolveStage(config, stage)
      const stateFloats = m.report.params * (3 + (s.optimizer.name === 'sgd' ? 0 : 1) + (s.ema_decay ? 1 : 0))
      const gpuBackend = options.countKernelsFor
      const counted = gpuBackend
        ? await cachedKernelCount(options.kernelCacheFile, () => kernelCountKey({config, shape, stage, gpuBackend}), () => countKernels(m, s, gpuBackend, config))
        : {}
      models.push({...m.report, memoryBytes: 4 * stateFloats + m.report.activationBytes, ...counted})
      options.onProgress?.(`  ${stage}: ${m.report.kind}, ${m.report.params.toLocaleString('en-US')} parameters${counted.kernelsPerStep ? `, ${counted.kernelsPerStep} kernels/step on the tfjs-op path (${options.countKernelsFor} target)` : ''}`)
      if (!options.measure) continue
      // Time the step training would run: in parallel when training.workers gives > 1 replica.
      const choice = resolveWorkers({setting: config.training?.workers, backend: backend.name, accumSteps: s.accum_steps, cpus: options.cpus ?? availableParallelism(), envOverride: options.workersOverride})
      if (choice.replicas > 1) options.onProgress?.(`  ${stage}: ${describeReplicas(choice.replicas)}`)
      const recipe = () => ({module: siblingModule(import.meta.url, 'measure'), export: 'buildMeasureReplica', args: {stage, config, shape, rngState} satisfies MeasureReplicaArgs})
      pool = await startStageReplicas(stage, choice.replicas, {backend: backend.name, store: m.spec.store, recipe})
      // Training runs this many steps: warm-up never runs more (tiny stages are timed whole).
      const trainSteps = Math.max(1, s.epochs) * stepsPerEpochOf(itemsPerEpoch(stage, shape), s.batch_size, s.accum_steps)
      stages.push(await timeStage(m, s, trainSteps, options, pool))
      const last = stages.at(-1)!
      options.onProgress?.(`  ${stage}: ${last.warmupSteps} warm-up + ${last.stepMs.length - last.warmupSteps} timed steps, ${last.measuredMs.toFixed(1)} ms/step`)
    } finally {
      await pool?.close()
      m.dispose()
    }
  }
  return {backend: backend.name, models, stages}
}

/**
 * Kernels of one optimizer step and one validation batch as `gpuBackend` runs the stage: its
 * micro-batch policy, and the tfjs-op formulation (GPU backends never take the fused JS kernels;
 * webgpu's hand-written programs run fewer, and the step model says its figure is an upper bound).
 * The count does not depend on the backend that runs it here, so the local one serves.
 */
async function countKernels(m: StageModel, s: ReturnType<typeof resolveStage>, gpuBackend: string, config: UpsConfig): Promise<Pick<ModelReport, 'kernelsPerStep' | 'forwardKernels' | 'microBatch'>> {
  const micro = resolveMicroBatch({setting: config.training?.micro_batch, backend: gpuBackend, batchSize: s.batch_size, accumSteps: s.accum_steps})
  const batch = Array.from({length: s.batch_size}, (_, i) => i % Math.max(1, m.spec.trainItems))
  const group = mergeMicroBatches(Array.from({length: s.accum_steps}, () => batch), micro.merge)
  const optimizer = new Optimizer(m.spec.store, optimizerConfig(s))
  const ema = s.ema_decay !== null && s.ema_decay > 0 ? new Ema(m.spec.store, s.ema_decay) : undefined
  const previous = setFusedKernels('off')
  try {
    const rng = new Rng(4321)
    const step = async (i: number) => void (await optimizerStep(m.spec, group, rng, {optimizer, clipNorm: s.grad_clip, ema, context: {stage: m.report.stage, epoch: 0, step: i}}, false))
    await step(1) // the first step also creates the optimizer's slots
    // tf.profile returns the engine's one profile object, refilled by the next call: read each count at once.
    const kernelsPerStep = (await tf.profile(() => step(2))).kernels.length
    const forwardKernels = (await tf.profile(async () => void (await m.spec.valLoss(batch, new Rng(1))))).kernels.length
    return {kernelsPerStep, forwardKernels, microBatch: {rows: micro.rows, passes: micro.passes, backend: gpuBackend}}
  } finally {
    setFusedKernels(previous)
    optimizer.dispose()
    ema?.dispose()
  }
}

async function timeStage(m: StageModel, s: ReturnType<typeof resolveStage>, trainSteps: number, options: MeasureOptions, pool?: ReplicaPool): Promise<StageMeasurement> {
  const stage = m.report.stage
  const optimizer = new Optimizer(m.spec.store, optimizerConfig(s))
  const ema = s.ema_decay !== null && s.ema_decay > 0 ? new Ema(m.spec.store, s.ema_decay) : undefined
  const rng = new Rng(4321)
  const batch = Array.from({length: s.batch_size}, (_, i) => i % Math.max(1, m.spec.trainItems))
  const group = Array.from({length: s.accum_steps}, () => batch)
  const step = async (i: number) => {
    const t0 = options.now()
    await optimizerStep(m.spec, group, rng, {optimizer, clipNorm: s.grad_clip, ema, context: {stage, epoch: 0, step: i + 1}}, false, pool)
    return options.now() - t0
  }
  try {
    const stepMs: number[] = []
    const timed = Math.max(1, options.steps ?? TIMED_STEPS)
    const max = Math.max(WARMUP_STEPS, Math.min(options.warmupSteps ?? WARMUP_MAX_STEPS, trainSteps - timed))
    const minSpan = options.minSpanMs ?? WARMUP_MIN_SPAN_MS
    let warmMs = 0
    const settled = () => stepMs.length >= WARMUP_STEPS + 2 * WARMUP_WINDOW && warmMs >= minSpan && stepTimeSettled(stepMs, WARMUP_WINDOW, WARMUP_SETTLED)
    while (stepMs.length < WARMUP_STEPS || (stepMs.length < max && warmMs < WARMUP_BUDGET_MS && !settled())) {
      stepMs.push(await step(stepMs.length))
      warmMs += stepMs.at(-1)!
    }
    const warmupSteps = stepMs.length
    for (let i = 0; i < timed; i++) stepMs.push(await step(stepMs.length))
    const measuredMs = Math.max(median(stepMs.slice(warmupSteps)), 1e-3)
    const valMs: number[] = []
    for (let i = 0; i < VAL_TIMED; i++) {
      const t0 = options.now()
      await m.spec.valLoss(batch, new Rng(1))
      valMs.push(options.now() - t0)
    }
    const flops = m.report.flopsPerStep * s.accum_steps
    return {
      stage, batchSize: s.batch_size * s.accum_steps, stepMs, warmupSteps, measuredMs,
      warmupExtraMs: Math.max(0, warmMs - warmupSteps * measuredMs), valBatchMs: median(valMs), flopsPerStep: flops, gflops: flops / measuredMs / 1e6,
      replicas: pool?.replicas ?? 1,
    }
  } finally {
    optimizer.dispose()
    ema?.dispose()
  }
}
