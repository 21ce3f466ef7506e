/**
 * The epoch loop every stage shares: deterministic shuffling from the checkpointed RNG, gradient
 * accumulation, clipping, EMA, validation, early stopping on the validation loss (never the
 * training loss), the learning-rate schedule, and checkpoints at every epoch boundary.
 *
 * Resume contract: `<stage>.ckpt` (and every numbered checkpoint) holds the complete state at the
 * end of an epoch (weights, optimizer slots, EMA shadows, scheduler, RNG, early-stopping counters).
 * A run killed at any moment restarts the interrupted epoch from that state and replays it exactly,
 * so it ends with the same weights as a run that was never interrupted.
 *
 * Validation (and so `<stage>_best.ckpt`) uses the trained weights, not the EMA: an EMA with decay
 * 0.999 still mostly holds the initial weights after a few hundred steps, which made short runs
 * look untrained. The EMA weights are saved on their own in `<stage>_ema.ckpt`.
 */
import * as tf from '@tensorflow/tfjs'

import type {ResolvedStage} from '../../config/index.js'
import {ExitCode, UserError} from '../../util/errors.js'
import {canonicalJson, sha256} from '../../util/hash.js'
import {type CheckpointPayload, latestValidCheckpoint, loadCheckpoint, type NamedArray, saveCheckpoint, saveNumberedCheckpoint, type SkippedCheckpoint} from '../checkpoint.js'
import {Optimizer, type OptimizerConfig, type OptimizerState} from '../optim.js'
import {Rng} from '../rng.js'
import {Scheduler, type SchedulerConfig, type SchedulerState} from '../schedule.js'
import {applyAccumulated, Ema, GradientAccumulator} from '../step.js'
import type {EpochRecord, StageProgress, StageSpec} from './types.js'

export interface LoopLogger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  debug?(obj: object, msg?: string): void
}

/** Test hooks (from UPS_TEST_FAULT): a NaN loss, or a crash right after an epoch was saved. */
export interface FaultPlan {
  nanAt?: {stage: string; epoch: number}
  crashAfter?: {stage: string; epoch: number}
}

export interface StageRunOptions {
  spec: StageSpec
  settings: ResolvedStage
  checkpointsDir: string
  /** Seeds the shuffling/noise stream of this stage (the checkpoint carries it on). */
  seed: number
  checkpointInterval: number
  /** Optimizer steps of earlier stages, so global_step keeps counting across stages. */
  globalStepOffset: number
  clock: () => number
  logger: LoopLogger
  onProgress?: (p: StageProgress) => void
  onEpoch?: (r: EpochRecord) => Promise<void>
  fault?: FaultPlan
  /** Validation uses at most this many items (a fixed subset), default 4096. */
  validationCap?: number
}

export interface StageOutcome {
  stage: string
  epochsDone: number
  steps: number
  bestVal: number | null
  bestEpoch: number | null
  stoppedEarly: boolean
  resumedFrom: string | null
  skippedCheckpoints: SkippedCheckpoint[]
  hashes: {last: string; best: string; ema?: string}
  /** Mean ms per optimizer step over the epochs run in this process (null if none ran). */
  stepTimeMs: number | null
}

interface LoopMeta {
  stage: string
  kind: 'last' | 'numbered'
  stage_settings_hash: string
  best_val: number | null
  best_epoch: number | null
  epochs_since_improve: number
  finished: boolean
  stopped_early: boolean
  ema_updates: number
  [key: string]: unknown
}

export function optimizerConfig(s: ResolvedStage): OptimizerConfig {
  const o = s.optimizer
  return {type: o.name, lr: o.lr, weightDecay: o.weight_decay, betas: o.betas, eps: o.eps, momentum: o.momentum}
}

export function schedulerConfig(s: ResolvedStage): SchedulerConfig {
  const c = s.scheduler
  switch (c.name) {
    case 'steplr':
      return {type: 'steplr', stepSize: c.step_size ?? 1, gamma: c.gamma}
    case 'cosineannealinglr':
      return {type: 'cosineannealinglr', tMax: c.t_max ?? Math.max(1, s.epochs), etaMin: c.eta_min}
    case 'reducelronplateau':
      return {type: 'reducelronplateau', factor: c.factor, patience: c.patience, minLr: c.min_lr}
    default:
      return {type: 'none'}
  }
}

const ckptPath = (dir: string, name: string): string => `${dir}/${name}.ckpt`

function chunk<T>(xs: T[], n: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n))
  return out
}

/**
 * One optimizer step of the loop: the loss of each micro-batch (built by the stage, inputs freed
 * after its backward), accumulated, then clipped, applied and folded into the EMA. The dry-run
 * times exactly this (pipeline/measure.ts), so its estimate measures what training runs.
 */
export function optimizerStep(
  spec: StageSpec,
  group: number[][],
  rng: Rng,
  o: Omit<Parameters<typeof applyAccumulated>[1], 'store'>,
  injectNaN = false,
): {result: ReturnType<typeof applyAccumulated>; items: number} {
  const acc = new GradientAccumulator(spec.store)
  let items = 0
  for (const [m, batch] of group.entries()) {
    const closure = spec.trainLoss(batch, rng)
    try {
      acc.add(injectNaN && m === 0 ? () => tf.mul(closure.fn(), Number.NaN) as tf.Scalar : closure.fn)
    } finally {
      closure.dispose()
    }
    items += batch.length
  }
  return {result: applyAccumulated(acc, {...o, store: spec.store}), items}
}

export async function runStage(o: StageRunOptions): Promise<StageOutcome> {
  const {spec, settings, checkpointsDir: dir, logger} = o
  const stage = spec.stage
  if (spec.trainItems < 1) {
    throw new UserError(`Stage ${stage} has no training items.`, {
      code: 'TRAIN_NO_DATA',
      hint: 'Check data.root, data.max_samples and the time stride: each trajectory needs at least two frames.',
      exitCode: ExitCode.USAGE,
    })
  }
  const settingsHash = sha256(canonicalJson(settings)).slice(0, 16)
  const optimizer = new Optimizer(spec.store, optimizerConfig(settings))
  let scheduler = new Scheduler(schedulerConfig(settings), settings.optimizer.lr)
  const ema = settings.ema_decay !== null && settings.ema_decay > 0 ? new Ema(spec.store, settings.ema_decay) : undefined
  const rng = new Rng(o.seed)
  let epoch = 0
  let step = 0
  let bestVal: number | null = null
  let bestEpoch: number | null = null
  let since = 0
  let finished = false
  let stoppedEarly = false
  let resumedFrom: string | null = null

  const latest = await latestValidCheckpoint(dir, stage)
  for (const s of latest.skipped) logger.warn({checkpoint: s.path}, `Skipping unusable checkpoint: ${s.reason}`)
  const hashes: StageOutcome['hashes'] = {last: '', best: ''}
  if (latest.checkpoint) {
    const c = latest.checkpoint
    const meta = c.metadata as LoopMeta
    spec.store.importArrays(c.tensors, '', `checkpoint ${c.path}`)
    optimizer.importState(c.optimizer as OptimizerState, c.tensors, 'optim/')
    if (ema) {
      ema.importArrays(c.tensors, 'ema/')
      ema.updates = meta.ema_updates ?? 0
    }
    if (meta.stage_settings_hash === settingsHash) {
      scheduler.load(c.scheduler as SchedulerState)
    } else {
      // The runbook's fix for a diverged stage is "lower the lr and resume": honour the new settings.
      logger.warn({stage}, `The ${stage} settings changed since ${c.path}; the learning-rate schedule restarts from the new settings at epoch ${c.epoch}.`)
      scheduler = new Scheduler(schedulerConfig(settings), settings.optimizer.lr)
      for (let e = 0; e < c.epoch; e++) scheduler.step()
    }
    if (c.rng) rng.setState(c.rng)
    epoch = c.epoch
    step = c.step
    bestVal = meta.best_val
    bestEpoch = meta.best_epoch
    since = meta.epochs_since_improve
    finished = meta.finished || epoch >= settings.epochs
    stoppedEarly = meta.stopped_early
    resumedFrom = c.path
    hashes.last = c.manifest.weightsSha256
    logger.info({stage, epoch, step, checkpoint: c.path}, `Resuming ${stage} after epoch ${epoch} (step ${step}) from ${c.path}`)
  }

  const fullPayload = (meta: LoopMeta): CheckpointPayload => {
    const opt = optimizer.exportState('optim/')
    const tensors: NamedArray[] = [...spec.store.exportArrays(), ...opt.arrays, ...(ema ? ema.exportArrays('ema/') : [])]
    return {tensors, epoch, step, rng: rng.getState(), optimizer: opt.state, scheduler: scheduler.state(), metadata: meta}
  }
  const validate = (): number | null => {
    const n = Math.min(spec.valItems, o.validationCap ?? 4096)
    if (n < 1) return null
    const run = (): number => {
      const valRng = new Rng(o.seed ^ 0x5a5a5a5a)
      let sum = 0
      for (const batch of chunk(Array.from({length: n}, (_, i) => i), settings.batch_size)) sum += spec.valLoss(batch, valRng) * batch.length
      return sum / n
    }
    return run()
  }

  const stepTimes: number[] = []
  try {
    while (!finished && epoch < settings.epochs) {
      const e = epoch + 1
      const t0 = o.clock()
      optimizer.lr = scheduler.lr
      const lr = optimizer.lr
      const perm = rng.permutation(spec.trainItems)
      const groups = chunk(chunk(perm, settings.batch_size), settings.accum_steps)
      let lossSum = 0
      let normSum = 0
      let items = 0
      for (let g = 0; g < groups.length; g++) {
        const inject = o.fault?.nanAt?.stage === stage && o.fault.nanAt.epoch === e && g === 0
        const {result: r, items: groupItems} = optimizerStep(spec, groups[g], rng, {optimizer, clipNorm: settings.grad_clip, ema, context: {stage, epoch: e, step: step + 1}}, inject)
        step += 1
        lossSum += r.loss * groupItems
        normSum += r.gradNorm
        items += groupItems
        o.onProgress?.({stage, epoch: e, epochs: settings.epochs, step: g + 1, steps: groups.length})
      }
      const trainTime = o.clock() - t0
      logger.debug?.({stage, epoch: e, tensors: tf.memory().numTensors, bytes: tf.memory().numBytes}, 'tfjs memory after the epoch')
      const val = validate()
      epoch = e
      const improved = val === null || bestVal === null || val < bestVal
      if (val !== null && improved) {
        bestVal = val
        bestEpoch = e
        since = 0
      } else if (val === null) {
        bestEpoch = e
      } else {
        since += 1
      }
      scheduler.step(val ?? undefined)
      stoppedEarly = val !== null && settings.patience > 0 && since >= settings.patience && e < settings.epochs
      finished = stoppedEarly || e >= settings.epochs
      const meta: LoopMeta = {
        stage, kind: 'last', stage_settings_hash: settingsHash, best_val: bestVal, best_epoch: bestEpoch,
        epochs_since_improve: since, finished, stopped_early: stoppedEarly, ema_updates: ema?.updates ?? 0,
      }
      // Order matters: `<stage>.ckpt` is the commit point, so it is written last.
      if (improved) {
        const m = await saveCheckpoint(ckptPath(dir, `${stage}_best`), {tensors: spec.store.exportArrays(), epoch, step, metadata: {stage, kind: 'best', val_loss: val}})
        hashes.best = m.weightsSha256
      }
      if (ema) hashes.ema = (await saveCheckpoint(ckptPath(dir, `${stage}_ema`), {tensors: ema.exportArrays(), epoch, step, metadata: {stage, kind: 'ema'}})).weightsSha256
      const payload = fullPayload(meta)
      if (o.checkpointInterval > 0 && epoch % o.checkpointInterval === 0) {
        await saveNumberedCheckpoint(dir, stage, {...payload, metadata: {...meta, kind: 'numbered'}}, 3)
      }
      hashes.last = (await saveCheckpoint(ckptPath(dir, stage), payload)).weightsSha256
      const epochTime = (o.clock() - t0) / 1000
      const stepTimeMs = trainTime / Math.max(1, groups.length)
      stepTimes.push(stepTimeMs)
      await o.onEpoch?.({
        stage, epoch, epochs: settings.epochs, globalStep: o.globalStepOffset + step, step, bestEpoch, stepTimeMs, improved, stoppedEarly,
        metrics: {
          [`${stage}/loss`]: items > 0 ? lossSum / items : null,
          [`${stage}/val_loss`]: val,
          [`${stage}/grad_norm`]: normSum / Math.max(1, groups.length),
          [`${stage}/lr`]: lr,
          [`${stage}/epoch_time_sec`]: epochTime,
          [`${stage}/samples_per_sec`]: epochTime > 0 ? spec.trainItems / epochTime : null,
          [`${stage}/best_loss`]: bestVal,
          [`${stage}/epochs_since_improve`]: since,
          global_step: o.globalStepOffset + step,
        },
      })
      if (o.fault?.crashAfter?.stage === stage && o.fault.crashAfter.epoch === e) {
        throw new UserError(`Simulated crash after ${stage} epoch ${e} (UPS_TEST_FAULT).`, {code: 'TRAIN_TEST_FAULT', exitCode: ExitCode.CHECK_FAILED})
      }
    }
  } finally {
    optimizer.dispose()
    ema?.dispose()
  }
  if (!hashes.best) hashes.best = await existingHash(dir, `${stage}_best`)
  if (ema && !hashes.ema) hashes.ema = await existingHash(dir, `${stage}_ema`)
  const stepTimeMs = stepTimes.length > 0 ? stepTimes.reduce((a, b) => a + b, 0) / stepTimes.length : null
  return {stage, epochsDone: epoch, steps: step, bestVal, bestEpoch, stoppedEarly, resumedFrom, skippedCheckpoints: latest.skipped, hashes, stepTimeMs}
}

async function existingHash(dir: string, name: string): Promise<string> {
  try {
    return (await loadCheckpoint(ckptPath(dir, name))).manifest.weightsSha256
  } catch {
    return ''
  }
}
