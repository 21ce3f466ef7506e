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
 *   epochs x (stepsPerEpoch x step + validationBatches x step / 3) + STAGE_OVERHEAD_S
 * where stepsPerEpoch = ceil(items / (batch x accum)); items are frames (N x T) for the
 * autoencoder and consecutive pairs (N x (T - 1)) for the latent stages; validation runs a
 * forward pass (about a third of a training step) over the validation split each epoch.
 * Evaluation: ceil(samples / batch) x (rollout_steps + 2) operator forward passes, plus
 * EVAL_OVERHEAD_S, per evaluation pass. Plus RUN_OVERHEAD_S once (process start, backend
 * and data loading).
 */
import type {StageName} from '../config/index.js'
import type {GpuInfo} from './gpus.js'

export const GPU_EFFICIENCY = 0.15
export const GPU_STEP_OVERHEAD_S = 0.004
export const ASSUMED_LOCAL_GFLOPS = 5
export const STAGE_OVERHEAD_S = 1
export const EVAL_OVERHEAD_S = 2
export const RUN_OVERHEAD_S = 5

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
}

export interface StageEstimate {
  stage: StageName
  epochs: number
  stepsPerEpoch: number
  batchSize: number
  localStepMs: number
  targetStepMs: number
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

export function estimateStage(input: StageInput, shape: DataShape, target: Target): StageEstimate {
  const perStep = input.batchSize * input.accumSteps
  const stepsPerEpoch = Math.max(1, Math.ceil(itemsPerEpoch(input.stage, shape) / perStep))
  const valBatches = shape.valSamples > 0 ? Math.ceil(itemsPerEpoch(input.stage, shape, shape.valSamples) / perStep) : 0
  const localStepMs = input.localStepMs ?? input.flopsPerStep / (ASSUMED_LOCAL_GFLOPS * 1e6)
  const step = targetStepSeconds(input.flopsPerStep, localStepMs / 1000, target)
  const seconds = input.epochs * (stepsPerEpoch * step + (valBatches * step) / 3) + STAGE_OVERHEAD_S
  return {stage: input.stage, epochs: input.epochs, stepsPerEpoch, batchSize: perStep, localStepMs, targetStepMs: step * 1000, seconds}
}

export function estimateEvaluation(operatorStepS: number, shape: DataShape, batchSize: number, rolloutSteps: number, passes: number): number {
  if (passes <= 0) return 0
  const batches = Math.max(1, Math.ceil(shape.evalSamples / Math.max(1, batchSize)))
  return passes * (batches * (rolloutSteps + 2) * (operatorStepS / 3) + EVAL_OVERHEAD_S)
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
