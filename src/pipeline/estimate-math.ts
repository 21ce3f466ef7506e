/**
 * The arithmetic of a run estimate, pure and documented.
 *
 * Step time on a GPU target (gpu-calibration.ts):
 *   gpuStep = kernelsPerStep x perKernelMs + flopsPerStep / achieved FLOP/s
 * with kernelsPerStep counted for the stage (tf.profile of one step with the GPU formulation and
 * the GPU micro-batch policy, measure.ts) and the two constants fitted from recorded GPU bench
 * results for the backend assumed on the target (calibrated, extrapolated from another GPU, or
 * unmeasured with a named stand-in). A validation (forward) batch is its own kernel count and a
 * third of a micro-batch step's FLOPs through the same model. The local step time plays no part:
 * a GPU step is dispatch-bound, not a faster CPU step.
 * On the local backend (`--gpu local`) the measured step time is used as is. Without a
 * measurement (`--static`) the local throughput is taken as ASSUMED_LOCAL_GFLOPS.
 *
 * Run time: per enabled stage
 *   epochs x (stepsPerEpoch x step + validationBatches x valBatch + EPOCH_OVERHEAD_S)
 *   + warm-up + STAGE_OVERHEAD_S
 * with the loop's own counts: stepsPerEpoch = ceil(ceil(items / batch) / accum) optimizer steps;
 * items are frames (N x T) for the autoencoder and consecutive pairs (N x (T - 1)) for the latent
 * stages; validation runs ceil(min(valItems, 4096) / batch) forward batches each epoch. `step`
 * and `valBatch` are measured (measure.ts: the median after warm-up; a validation batch without a
 * measurement is a third of a step); `warm-up` is what the measured warm-up steps cost beyond
 * the settled step time, paid once per stage (local backend only). Early stopping can only end
 * a stage sooner: the estimate is for every epoch.
 * When the latent stages follow the autoencoder, the latent cache encodes every frame of every
 * split once: ceil(frames / batch) autoencoder validation batches (an encode is at most that).
 * Evaluation: ceil(samples / batch) x (rollout_steps + 2) operator forward batches, plus
 * EVAL_OVERHEAD_S, per evaluation pass. Plus RUN_OVERHEAD_S once.
 *
 * The fixed overheads are what the smoke config's `ups run` spends outside the measured steps on a
 * 2-core machine (see bench/estimate.ts), stated rather than measured per run:
 *   RUN_OVERHEAD_S   2    Node and CLI start, tfjs and wasm backend start-up, config validation,
 *                         the quick data scan, leaderboard and report writes.
 *   STAGE_OVERHEAD_S 0.1  building the stage's models and loading upstream checkpoints.
 *   EPOCH_OVERHEAD_S 0.02 the epoch's checkpoint writes (best, EMA, last, numbered: each an
 *                         atomic write of a few hundred KB for models this size).
 *   EVAL_OVERHEAD_S  0.8  per pass: loading the simulator and the split, baselines, metrics and
 *                         the rendered plots.
 */
import type {StageName} from '../config/index.js'
import {modelStepMs, type StepModel} from './gpu-calibration.js'
import type {GpuInfo} from './gpus.js'

export const ASSUMED_LOCAL_GFLOPS = 5
export const STAGE_OVERHEAD_S = 0.1
export const EPOCH_OVERHEAD_S = 0.02
export const EVAL_OVERHEAD_S = 0.8
export const RUN_OVERHEAD_S = 2
/** The loop validates on at most this many items (stages/loop.ts validationCap default). */
export const VALIDATION_CAP = 4096
/** A forward pass (validation, evaluation) without a measurement: about a third of a training step. */
export const FORWARD_FRACTION = 1 / 3

export interface DataShape {
  trainSamples: number
  valSamples: number
  /** Samples of the evaluation split (capped by evaluation.max_samples). */
  evalSamples: number
  /** Frames per sample after the time stride. */
  frames: number
  grid: number[]
  channels: number
  /** Where the numbers come from: the data files, or the config (generate section / task defaults). */
  source: 'data' | 'config'
}

export interface StageInput {
  stage: StageName
  epochs: number
  batchSize: number
  accumSteps: number
  flopsPerStep: number
  /** Measured local step (ms), when measured. */
  localStepMs: number | null
  /** Measured local validation batch (ms); default localStepMs x FORWARD_FRACTION. */
  localValBatchMs?: number | null
  /** Measured warm-up cost beyond the settled step time (ms), paid once (local backend only). */
  warmupExtraMs?: number | null
  /** Kernels of one optimizer step as the GPU target runs it (needed for a GPU target). */
  kernelsPerStep?: number | null
  /** Kernels of one validation (forward) batch. */
  forwardKernels?: number | null
}

export interface StageEstimate {
  stage: StageName
  epochs: number
  stepsPerEpoch: number
  batchSize: number
  localStepMs: number
  targetStepMs: number
  validationBatches: number
  /** One validation (forward) batch on the target. */
  targetValBatchMs: number
  /** Kernels per optimizer step the GPU estimate used (null: local target). */
  kernelsPerStep: number | null
  /** Training items per second of step time on the target. */
  samplesPerSec: number
  warmupSeconds: number
  seconds: number
}

export interface Target {
  /** 'local' (this machine's backend) or a GPU from the table. */
  name: string
  gpu: GpuInfo | null
  pricePerHour: number
  priceSource: string
  /** The calibrated step model for a GPU target (absent: local). */
  model?: StepModel
}

export function itemsPerEpoch(stage: StageName, shape: DataShape, samples = shape.trainSamples): number {
  return stage === 'autoencoder' ? samples * shape.frames : samples * Math.max(1, shape.frames - 1)
}

/** One optimizer step on the target, in seconds: the measured local step, or the GPU model. */
export function targetStepSeconds(input: Pick<StageInput, 'flopsPerStep' | 'kernelsPerStep' | 'stage'>, localStepS: number, target: Target): number {
  if (!target.gpu) return localStepS
  return modelStepMs(gpuKernels(input.kernelsPerStep, input.stage, target), input.flopsPerStep, gpuModel(target)) / 1000
}

function gpuModel(target: Target): StepModel {
  if (!target.model) throw new Error(`no step model for ${target.name}: resolve the target with its backend`)
  return target.model
}

function gpuKernels(kernels: number | null | undefined, stage: string, target: Target): number {
  if (!kernels) throw new Error(`no kernel count for ${stage}: the GPU estimate for ${target.name} needs one`)
  return kernels
}

/** Optimizer steps per epoch, counted as the loop does: batches of `batch`, grouped by `accum`. */
export function stepsPerEpochOf(items: number, batch: number, accum: number): number {
  return Math.max(1, Math.ceil(Math.ceil(items / Math.max(1, batch)) / Math.max(1, accum)))
}

export function estimateStage(input: StageInput, shape: DataShape, target: Target): StageEstimate {
  const stepsPerEpoch = stepsPerEpochOf(itemsPerEpoch(input.stage, shape), input.batchSize, input.accumSteps)
  const valItems = shape.valSamples > 0 ? Math.min(VALIDATION_CAP, itemsPerEpoch(input.stage, shape, shape.valSamples)) : 0
  const validationBatches = Math.ceil(valItems / Math.max(1, input.batchSize))
  const localStepMs = input.localStepMs ?? input.flopsPerStep / (ASSUMED_LOCAL_GFLOPS * 1e6)
  const step = targetStepSeconds(input, localStepMs / 1000, target)
  const localValMs = input.localValBatchMs ?? localStepMs * FORWARD_FRACTION
  // A GPU validation batch: its own kernels, a third of one micro-batch's FLOPs (forward only).
  const valBatch = target.gpu
    ? modelStepMs(gpuKernels(input.forwardKernels, input.stage, target), (input.flopsPerStep / Math.max(1, input.accumSteps)) * FORWARD_FRACTION, gpuModel(target)) / 1000
    : localValMs / 1000
  const warmupSeconds = target.gpu ? 0 : (input.warmupExtraMs ?? 0) / 1000
  const seconds = input.epochs * (stepsPerEpoch * step + validationBatches * valBatch + EPOCH_OVERHEAD_S) + warmupSeconds + STAGE_OVERHEAD_S
  const items = input.batchSize * input.accumSteps
  return {
    stage: input.stage, epochs: input.epochs, stepsPerEpoch, batchSize: items, localStepMs, targetStepMs: step * 1000,
    validationBatches, targetValBatchMs: valBatch * 1000, kernelsPerStep: target.gpu ? (input.kernelsPerStep ?? null) : null, samplesPerSec: items / step, warmupSeconds, seconds,
  }
}

/** Encoding every frame of every split into the latent cache: forward batches of the autoencoder. */
export function estimateLatentCache(shape: DataShape, batchSize: number, forwardBatchS: number): number {
  const frames = (shape.trainSamples + shape.valSamples + shape.evalSamples) * shape.frames
  return Math.ceil(frames / Math.max(1, batchSize)) * forwardBatchS
}

/** `forwardBatchS`: one operator forward batch on the target. */
export function estimateEvaluation(forwardBatchS: number, shape: DataShape, batchSize: number, rolloutSteps: number, passes: number): number {
  if (passes <= 0) return 0
  const batches = Math.max(1, Math.ceil(shape.evalSamples / Math.max(1, batchSize)))
  return passes * (batches * (rolloutSteps + 2) * forwardBatchS + EVAL_OVERHEAD_S)
}

export function formatHours(seconds: number): string {
  const h = seconds / 3600
  return h >= 0.1 ? h.toFixed(2) : h.toFixed(3)
}

/** `Estimated: 0.42 h, $0.80 on A100 ($1.89/hr), webgpu calibrated` */
export function estimateLine(e: {totalSeconds: number; costUsd: number; target: Target}): string {
  if (!e.target.gpu) return `Estimated: ${formatHours(e.totalSeconds)} h (${Math.round(e.totalSeconds)} s) on this machine (local backend, no cost)`
  const m = e.target.model
  return `Estimated: ${formatHours(e.totalSeconds)} h, $${e.costUsd.toFixed(2)} on ${e.target.name} ($${e.target.pricePerHour.toFixed(2)}/hr)${m ? `, ${m.backend} ${m.status}` : ''}`
}
