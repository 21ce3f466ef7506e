/**
 * Evaluation in physical space. For each trajectory of a split (read in physical units):
 *   one step   decode(op(encode(u_t))) (+ corrector) vs u_{t+1}, over every consecutive pair
 *   rollout    z = encode(u_0); z <- op(z) (+ corrector) N times; decode each step vs u_1..u_N
 *   latent     the same in latent space, against encode(u_{t+1}) / encode(u_k)
 *   recon      decode(encode(u_t)) vs u_t (what the autoencoder alone loses)
 *   baselines  persistence and the linear one-step map, on the same samples
 * The simulator works in normalised units; its normStats convert both ways. It is an interface
 * on plain Float32Arrays, so tests drive this with exact fakes and no tfjs.
 */
import type {UpsConfig} from '../config/schema.js'
import {trainingConfigHash} from '../config/resolve.js'
import type {Dataset} from '../data/pdebench.js'
import type {CorrectorNoise} from './simulator.js'
import {ExitCode, UserError} from '../util/errors.js'
import {improvementRatio, LinearBaselineFitter, type LinearBaseline, persistence, rolloutMap} from './baselines.js'
import {type FieldMetrics, FieldMetricsAccumulator, type RolloutMetrics, RolloutMetricsAccumulator} from './metrics.js'

type MaybePromise<T> = T | Promise<T>

/** A batch of latents [B, tokens, dim] or of fields [B, ...spatial, C]. */
export interface Tensorish {
  data: Float32Array
  shape: number[]
}

export interface Simulator {
  /** Normalised fields [B, ...spatial, C] -> latents [B, tokens, dim]. */
  encode(u: Float32Array, shape: number[]): MaybePromise<Tensorish>
  /** Latents -> normalised fields [B, ...spatial, C]. */
  decode(z: Tensorish): MaybePromise<Tensorish>
  /** One operator step of size dt. */
  step(z: Tensorish, dt: number): MaybePromise<Tensorish>
  /** The corrected next latent given the operator's prediction (diffusion corrector at tau, or the distilled student). */
  correct?(prediction: Tensorish, context: {previous: Tensorish; dt: number; tau: number; noise: CorrectorNoise}): MaybePromise<Tensorish>
  /** Which corrector `correct` applies, for the report. */
  correctorKind?: string
  /** Per-channel statistics the simulator was trained with (x_norm = (x - mean) / std). */
  normStats: {mean: number[]; std: number[]}
  /** Checkpoint hashes by stage (weights sha256). */
  hashes: Record<string, string>
  dispose?(): void
}

export interface EvalOptions {
  config: UpsConfig
  /** The split to evaluate, opened WITHOUT normalisation (physical units) and with the training time stride. */
  dataset: Dataset
  simulator: Simulator
  split: string
  /** Autoregressive steps from the first frame (capped at frames - 1). */
  rollout: number
  tau: number
  useCorrector: boolean
  /** Where the corrector's sampling starts (default 'mean': a deterministic point estimate). */
  correctorNoise?: CorrectorNoise
  maxSamples?: number | null
  /** The training split (physical units) to fit the linear baseline on; without it that baseline is skipped. */
  trainDataset?: Dataset | null
  /** Operator time step (default training.dt, else the data's frame spacing, else 1). */
  dt?: number
  /** Trajectories read per batch (default 8) and frames per simulator call (default 64). */
  batchSize?: number
  frameBatch?: number
  /** Trajectories whose rollouts are kept for plots (default 3). */
  examples?: number
  linear?: {lambda?: number; maxPairs?: number; maxFrameSize?: number}
}

export interface EvalDeps {
  /** Monotonic milliseconds (performance.now in production). */
  now(): number
  onProgress?(done: number, total: number, label: string): void
}

export interface PairMetrics {
  oneStep: FieldMetrics
  rollout: RolloutMetrics
}

export interface EvalExample {
  sample: number
  /** Rollout steps shown (1-based; frame index = step). */
  steps: number[]
  /** Grid coordinate of each point (1-D; a middle line of 2-D grids). */
  x: number[]
  /** [steps.length][points] of channel 0 in physical units. */
  truth: number[][]
  model: number[][]
  persistence: number[][]
  linear: number[][] | null
}

export interface EvalResult {
  task: string
  split: string
  samples: number
  frames: number
  grid: number[]
  channels: number
  rolloutSteps: number
  dt: number
  tau: number
  corrector: {used: boolean; kind: string | null; noise: CorrectorNoise | null}
  configHash: string
  checkpointHashes: Record<string, string>
  model: PairMetrics
  latent: PairMetrics
  reconstruction: FieldMetrics
  baselines: {
    persistence: PairMetrics
    linear: (PairMetrics & {pairs: number; ridge: number}) | {skipped: string}
  }
  /** baseline nRMSE / model nRMSE (> 1: the model is better); null when undefined. */
  ratios: {persistence: {oneStep: number | null; rollout: number | null}; linear: {oneStep: number | null; rollout: number | null} | null}
  timing: {totalSeconds: number; linearFitSeconds: number; modelSeconds: number; baselineSeconds: number}
  examples: EvalExample[]
}

export async function evaluate(options: EvalOptions, deps: EvalDeps): Promise<EvalResult> {
  const t0 = deps.now()
  const {dataset: ds, simulator: sim, config} = options
  const spatial = ds.spatialShape
  const sd = spatial.length
  const C = ds.channels
  const F = spatial.reduce((a, b) => a * b, 1) * C
  const T = ds.numFrames
  if (T < 2) throw new UserError(`The ${options.split} split of ${ds.task} has ${T} frame(s) per trajectory; evaluation needs at least 2.`, {code: 'EVAL_TOO_FEW_FRAMES', exitCode: ExitCode.USAGE})
  if (sim.normStats.mean.length !== C || sim.normStats.std.length !== C) {
    throw new UserError(`The checkpoint's normalisation statistics have ${sim.normStats.mean.length} channel(s); the ${options.split} data has ${C}.`, {
      code: 'EVAL_CHANNEL_MISMATCH', hint: 'Evaluate on data of the task the checkpoints were trained on.', exitCode: ExitCode.CHECK_FAILED,
    })
  }
  const N = Math.min(ds.numSamples, options.maxSamples ?? ds.numSamples)
  if (N < 1) throw new UserError(`The ${options.split} split of ${ds.task} has no trajectories to evaluate.`, {code: 'EVAL_NO_SAMPLES', exitCode: ExitCode.USAGE})
  const R = Math.max(1, Math.min(options.rollout, T - 1))
  const dt = options.dt ?? config.training?.dt ?? (ds.t && ds.t.length > 1 ? ds.t[1] - ds.t[0] : 1)
  const useCorrector = options.useCorrector && typeof sim.correct === 'function'
  const correctorNoise = options.correctorNoise ?? 'mean'
  const batch = options.batchSize ?? 8
  const chunk = options.frameBatch ?? 64
  const nExamples = Math.min(options.examples ?? 3, N)

  // Linear baseline: fitted first, on the training split only.
  const tFit = deps.now()
  let linear: LinearBaseline | {skipped: string} = {skipped: 'no training split given'}
  if (options.trainDataset) linear = fitLinear(options.trainDataset, spatial, C, options.linear ?? {}, deps)
  const linearFitSeconds = (deps.now() - tFit) / 1000

  const spec = {spatialDims: sd}
  const acc = {
    model: {one: new FieldMetricsAccumulator(spec), roll: new RolloutMetricsAccumulator(spec)},
    latent: {one: new FieldMetricsAccumulator({spatialDims: 1}), roll: new RolloutMetricsAccumulator({spatialDims: 1})},
    recon: new FieldMetricsAccumulator(spec),
    persistence: {one: new FieldMetricsAccumulator(spec), roll: new RolloutMetricsAccumulator(spec)},
    linear: {one: new FieldMetricsAccumulator(spec), roll: new RolloutMetricsAccumulator(spec)},
  }
  const examples: EvalExample[] = []
  const exampleSteps = [...new Set([1, Math.max(1, Math.round(R / 2)), R])]
  let modelMs = 0
  let baselineMs = 0

  const call = async (fn: (x: Tensorish) => MaybePromise<Tensorish>, x: Tensorish): Promise<Tensorish> => {
    // Chunks of `chunk` items keep each simulator call (and its tensors) small.
    const n = x.shape[0]
    const per = x.data.length / Math.max(n, 1)
    const parts: Tensorish[] = []
    for (let a = 0; a < n; a += chunk) {
      const b = Math.min(n, a + chunk)
      parts.push(await fn({data: x.data.subarray(a * per, b * per), shape: [b - a, ...x.shape.slice(1)]}))
    }
    return concat(parts)
  }

  for (let start = 0; start < N; start += batch) {
    const end = Math.min(N, start + batch)
    const b = end - start
    const {data: phys} = ds.readSamples(start, end)
    const frameShape = [...spatial, C]
    const norm = normalize(phys, sim.normStats)

    const tm = deps.now()
    const zAll = await call((x) => sim.encode(x.data, x.shape), {data: norm, shape: [b * T, ...frameShape]})
    const zPer = zAll.data.length / (b * T)
    const zShape = zAll.shape.slice(1)
    const recon = denormalize((await call((z) => sim.decode(z), zAll)).data, sim.normStats)
    // One step over every consecutive pair.
    const zIn = pickFrames(zAll.data, b, T, zPer, 0, T - 1)
    const zTarget = pickFrames(zAll.data, b, T, zPer, 1, T)
    const stepFn = async (z: Tensorish): Promise<Tensorish> => {
      const next = await sim.step(z, dt)
      return useCorrector ? sim.correct!(next, {previous: z, dt, tau: options.tau, noise: correctorNoise}) : next
    }
    const zOne = await call(stepFn, {data: zIn, shape: [b * (T - 1), ...zShape]})
    const uOne = denormalize((await call((z) => sim.decode(z), zOne)).data, sim.normStats)
    // Rollout from the first frame.
    let z: Tensorish = {data: pickFrames(zAll.data, b, T, zPer, 0, 1), shape: [b, ...zShape]}
    const zRoll = new Float32Array(b * R * zPer)
    const uRoll = new Float32Array(b * R * F)
    for (let k = 0; k < R; k++) {
      z = await call(stepFn, z)
      const u = denormalize((await call((x) => sim.decode(x), z)).data, sim.normStats)
      scatterStep(zRoll, z.data, b, R, zPer, k)
      scatterStep(uRoll, u, b, R, F, k)
    }
    modelMs += deps.now() - tm

    const uIn = pickFrames(phys, b, T, F, 0, T - 1)
    const uTarget = pickFrames(phys, b, T, F, 1, T)
    const uTruthRoll = pickFrames(phys, b, T, F, 1, R + 1)
    const zTruthRoll = pickFrames(zAll.data, b, T, zPer, 1, R + 1)
    acc.recon.add(recon, phys, [b * T, ...frameShape])
    acc.model.one.add(uOne, uTarget, [b * (T - 1), ...frameShape])
    acc.model.roll.add(uRoll, uTruthRoll, [b, R, ...frameShape])
    acc.latent.one.add(zOne.data, zTarget, [b * (T - 1), ...zShape])
    acc.latent.roll.add(zRoll, zTruthRoll, [b, R, ...zShape])

    const tb = deps.now()
    const first = pickFrames(phys, b, T, F, 0, 1)
    const persistRoll = rolloutMap(persistence, first, F, R)
    acc.persistence.one.add(persistence.predict(uIn, F), uTarget, [b * (T - 1), ...frameShape])
    acc.persistence.roll.add(persistRoll, uTruthRoll, [b, R, ...frameShape])
    let linearRoll: Float32Array | null = null
    if (!('skipped' in linear)) {
      linearRoll = rolloutMap(linear, first, F, R)
      acc.linear.one.add(linear.predict(uIn, F), uTarget, [b * (T - 1), ...frameShape])
      acc.linear.roll.add(linearRoll, uTruthRoll, [b, R, ...frameShape])
    }
    baselineMs += deps.now() - tb

    for (let i = 0; i < b && examples.length < nExamples; i++) {
      const line = (arr: Float32Array, steps: number, k: number) => lineOf(arr, ((i * steps) + k) * F, spatial, C)
      examples.push({
        sample: start + i,
        steps: exampleSteps,
        x: gridCoords(ds, spatial),
        truth: exampleSteps.map((s) => line(uTruthRoll, R, s - 1)),
        model: exampleSteps.map((s) => line(uRoll, R, s - 1)),
        persistence: exampleSteps.map((s) => line(persistRoll, R, s - 1)),
        linear: linearRoll ? exampleSteps.map((s) => line(linearRoll!, R, s - 1)) : null,
      })
    }
    deps.onProgress?.(end, N, 'samples')
  }

  const model = {oneStep: acc.model.one.result(), rollout: acc.model.roll.result()}
  const pers = {oneStep: acc.persistence.one.result(), rollout: acc.persistence.roll.result()}
  const lin = 'skipped' in linear ? linear : {oneStep: acc.linear.one.result(), rollout: acc.linear.roll.result(), pairs: linear.pairs, ridge: linear.ridge}
  const ratio = (base: PairMetrics) => ({
    oneStep: improvementRatio(base.oneStep.nrmse, model.oneStep.nrmse),
    rollout: improvementRatio(base.rollout.overall.nrmse, model.rollout.overall.nrmse),
  })
  return {
    task: ds.task, split: options.split, samples: N, frames: T, grid: spatial, channels: C, rolloutSteps: R, dt, tau: options.tau,
    corrector: {used: useCorrector, kind: useCorrector ? (sim.correctorKind ?? 'corrector') : null, noise: useCorrector ? correctorNoise : null},
    configHash: trainingConfigHash(config),
    checkpointHashes: {...sim.hashes},
    model,
    latent: {oneStep: acc.latent.one.result(), rollout: acc.latent.roll.result()},
    reconstruction: acc.recon.result(),
    baselines: {persistence: pers, linear: lin},
    ratios: {persistence: ratio(pers), linear: 'skipped' in lin ? null : ratio(lin)},
    timing: {
      totalSeconds: (deps.now() - t0) / 1000, linearFitSeconds,
      modelSeconds: modelMs / 1000, baselineSeconds: baselineMs / 1000,
    },
    examples,
  }
}

function fitLinear(train: Dataset, spatial: number[], C: number, o: NonNullable<EvalOptions['linear']>, deps: EvalDeps): LinearBaseline | {skipped: string} {
  const F = spatial.reduce((a, b) => a * b, 1) * C
  const maxF = o.maxFrameSize ?? 2048
  if (F > maxF) return {skipped: `a frame has ${F} values (more than ${maxF}): the normal equations would be too large`}
  if (train.spatialShape.join() !== spatial.join() || train.channels !== C) {
    return {skipped: `the training split's grid ${train.spatialShape.join('x')}x${train.channels} differs from the evaluated ${spatial.join('x')}x${C}`}
  }
  if (train.numFrames < 2) return {skipped: 'the training split has fewer than 2 frames per trajectory'}
  const fitter = new LinearBaselineFitter(F)
  const maxPairs = o.maxPairs ?? 20_000
  const perSample = train.numFrames - 1
  const samples = Math.min(train.numSamples, Math.max(1, Math.ceil(maxPairs / perSample)))
  for (const {data, end} of train.batches(16, {end: samples})) {
    fitter.addTrajectories(data, data.length / (train.numFrames * F), train.numFrames)
    deps.onProgress?.(end, samples, 'linear baseline fit')
  }
  return fitter.solve({lambda: o.lambda})
}

function concat(parts: Tensorish[]): Tensorish {
  if (parts.length === 1) return parts[0]
  const n = parts.reduce((s, p) => s + p.shape[0], 0)
  const data = new Float32Array(parts.reduce((s, p) => s + p.data.length, 0))
  let at = 0
  for (const p of parts) {
    data.set(p.data, at)
    at += p.data.length
  }
  return {data, shape: [n, ...parts[0].shape.slice(1)]}
}

/** Frames [f0, f1) of each of n trajectories of T frames of `size` values -> [n * (f1 - f0), size]. */
function pickFrames(src: Float32Array, n: number, T: number, size: number, f0: number, f1: number): Float32Array {
  const k = f1 - f0
  const out = new Float32Array(n * k * size)
  for (let i = 0; i < n; i++) out.set(src.subarray((i * T + f0) * size, (i * T + f1) * size), i * k * size)
  return out
}

/** Writes step k of n trajectories ([n, size]) into [n, R, size]. */
function scatterStep(dst: Float32Array, src: Float32Array, n: number, R: number, size: number, k: number): void {
  for (let i = 0; i < n; i++) dst.set(src.subarray(i * size, (i + 1) * size), (i * R + k) * size)
}

function normalize(x: Float32Array, s: {mean: number[]; std: number[]}): Float32Array {
  const C = s.mean.length
  const out = new Float32Array(x.length)
  for (let j = 0; j < x.length; j++) out[j] = (x[j] - s.mean[j % C]) / (s.std[j % C] > 0 ? s.std[j % C] : 1)
  return out
}

function denormalize(x: Float32Array, s: {mean: number[]; std: number[]}): Float32Array {
  const C = s.mean.length
  const out = new Float32Array(x.length)
  for (let j = 0; j < x.length; j++) out[j] = x[j] * (s.std[j % C] > 0 ? s.std[j % C] : 1) + s.mean[j % C]
  return out
}

/** Channel 0 along the first axis (through the middle of the other axes in 2-D). */
function lineOf(arr: Float32Array, at: number, spatial: number[], C: number): number[] {
  const rest = spatial.slice(1).reduce((a, b) => a * b, 1)
  const mid = spatial.length > 1 ? Math.floor(spatial[1] / 2) * (rest / spatial[1]) : 0
  return Array.from({length: spatial[0]}, (_, i) => arr[at + (i * rest + mid) * C])
}

function gridCoords(ds: Dataset, spatial: number[]): number[] {
  if (ds.x && ds.x.length === ds.fullSpatialShape[0]) return Array.from(ds.x.subarray(0, spatial[0]))
  return Array.from({length: spatial[0]}, (_, i) => i / spatial[0])
}
