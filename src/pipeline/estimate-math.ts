/**
 * The arithmetic of a run estimate, pure and documented.
 *
 * Step time on the target GPU (scaling a measured local step):
 *   achieved   = flopsPerStep / localStepSeconds                      (local FLOP/s)
 *   gpuStep    = localStepSeconds x achieved / (gpu.fp32Tflops x 1e12 x GPU_EFFICIENCY)
 *                + GPU_STEP_OVERHEAD_S
 * i.e. the step's FLOPs at GPU_EFFICIENCY of the GPU's dense FP32 peak, plus a fixed per-step
 * cost. GPU_EFFICIENCY = 0.15: models this small (tens of thousands to a few million parameters,
 * batches of 8-64) keep a GPU far from peak; 10-20% is what small transformers reach in PyTorch
 * eager mode. GPU_STEP_OVERHEAD_S = 4 ms: a step launches several hundred small kernels (forward,
 * backward, optimizer) at ~5-10 us each through tfjs-node-gpu, plus the loss read-back.
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
import type {GpuInfo} from './gpus.js'

export const GPU_EFFICIENCY = 0.15
export const GPU_STEP_OVERHEAD_S = 0.004
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
  warmupSeconds: number
  seconds: number
}

export interface Target {
  /** 'local' (this machine's backend) or a GPU from the table. */
  name: string
  gpu: GpuInfo | null
  pricePerHour: number
  priceSource: string
}

export function itemsPerEpoch(stage: StageName, shape: DataShape, samples = shape.trainSamples): number {
  return stage === 'autoencoder' ? samples * shape.frames : samples * Math.max(1, shape.frames - 1)
}

export function targetStepSeconds(flopsPerStep: number, localStepS: number, target: Target): number {
  if (!target.gpu) return localStepS
  const achieved = flopsPerStep / localStepS
  return (localStepS * achieved) / (target.gpu.fp32Tflops * 1e12 * GPU_EFFICIENCY) + GPU_STEP_OVERHEAD_S
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
  const step = targetStepSeconds(input.flopsPerStep, localStepMs / 1000, target)
  const localValMs = input.localValBatchMs ?? localStepMs * FORWARD_FRACTION
  // A validation batch scales to the target like a step, by its share of the step's time.
  const valBatch = target.gpu ? step * Math.min(1, localValMs / localStepMs) : localValMs / 1000
  const warmupSeconds = target.gpu ? 0 : (input.warmupExtraMs ?? 0) / 1000
  const seconds = input.epochs * (stepsPerEpoch * step + validationBatches * valBatch + EPOCH_OVERHEAD_S) + warmupSeconds + STAGE_OVERHEAD_S
  return {
    stage: input.stage, epochs: input.epochs, stepsPerEpoch, batchSize: input.batchSize * input.accumSteps, localStepMs, targetStepMs: step * 1000,
    validationBatches, targetValBatchMs: valBatch * 1000, warmupSeconds, seconds,
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

/** `Estimated: 0.42 h, $0.80 on A100 ($1.89/hr)` */
export function estimateLine(e: {totalSeconds: number; costUsd: number; target: Target}): string {
  if (!e.target.gpu) return `Estimated: ${formatHours(e.totalSeconds)} h (${Math.round(e.totalSeconds)} s) on this machine (local backend, no cost)`
  return `Estimated: ${formatHours(e.totalSeconds)} h, $${e.costUsd.toFixed(2)} on ${e.target.name} ($${e.target.pricePerHour.toFixed(2)}/hr)`
}
