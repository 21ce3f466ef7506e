/**
 * How many rows one forward/backward pass computes (training.micro_batch). An optimizer step
 * always averages batch_size x accum_steps items; the micro-batch only says how they are split
 * into passes. On CPU backends a pass of batch_size rows is already enough work, and the step
 * stays exactly as before. A GPU step is dispatch-bound (each pass launches the same few
 * thousand kernels whatever its rows), so there the accumulated micro-batches are merged into
 * fewer, larger passes: the same average up to float rounding, with fewer kernel launches.
 * Exception: an epoch's last, partial step weighs a short micro-batch like a full one when it runs
 * on its own, but by its rows inside a merged pass.
 */
import {ExitCode, UserError} from '../util/errors.js'

export type MicroBatchSetting = 'auto' | number

/** Backends where a pass's rows are nearly free next to its kernel launches. */
export const GPU_BACKEND_NAMES = ['webgpu', 'tensorflow-gpu'] as const
export type GpuBackend = (typeof GPU_BACKEND_NAMES)[number]
export const GPU_BACKENDS: ReadonlySet<string> = new Set(GPU_BACKEND_NAMES)

export interface MicroBatchChoice {
  /** Micro-batches of batch_size merged into one pass (1: as configured). */
  merge: number
  /** Rows of one full pass. */
  rows: number
  /** Passes per optimizer step. */
  passes: number
  /** Why, for the log. */
  reason: string
}

export interface MicroBatchInputs {
  /** training.micro_batch (undefined: auto). */
  setting: MicroBatchSetting | undefined
  backend: string
  batchSize: number
  accumSteps: number
}

export function resolveMicroBatch(i: MicroBatchInputs): MicroBatchChoice {
  const setting = i.setting ?? 'auto'
  const accum = Math.max(1, i.accumSteps)
  const batch = Math.max(1, i.batchSize)
  const of = (merge: number, reason: string): MicroBatchChoice => ({merge, rows: merge * batch, passes: Math.ceil(accum / merge), reason})
  if (setting === 'auto') {
    if (!GPU_BACKENDS.has(i.backend)) return of(1, `training.micro_batch auto: ${i.backend} keeps batch_size ${batch} per pass`)
    return of(accum, `training.micro_batch auto: ${i.backend} runs the whole step (${batch} x ${accum}) in one pass`)
  }
  if (!Number.isInteger(setting) || setting < 1) {
    throw new UserError(`training.micro_batch must be auto or a positive integer, got ${setting}.`, {code: 'CONFIG_INVALID', exitCode: ExitCode.USAGE})
  }
  // Whole micro-batches only, so each pass averages equal-sized halves of the same step.
  const merge = Math.min(accum, Math.max(1, Math.floor(setting / batch)))
  return of(merge, `training.micro_batch ${setting}: ${merge} micro-batch(es) of ${batch} per pass`)
}

/** The step's micro-batches, `merge` at a time concatenated into one pass. merge 1 returns `group` itself. */
export function mergeMicroBatches(group: number[][], merge: number): number[][] {
  if (merge <= 1) return group
  const out: number[][] = []
  for (let i = 0; i < group.length; i += merge) out.push(group.slice(i, i + merge).flat())
  return out
}
