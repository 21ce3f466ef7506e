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
import {basename} from 'node:path'

import * as tf from '@tensorflow/tfjs'

import type {ResolvedStage} from '../../config/index.js'
import {ExitCode, UserError} from '../../util/errors.js'
import {canonicalJson, sha256} from '../../util/hash.js'
import {type CheckpointPayload, latestValidCheckpoint, type LoadedCheckpoint, loadCheckpoint, type NamedArray, numberedCheckpointPath, removeSwapLeftovers, saveCheckpoint, saveNumberedCheckpoint, type SkippedCheckpoint} from '../checkpoint.js'
import {Optimizer, type OptimizerConfig, type OptimizerState} from '../optim.js'
import type {ReplicaPool} from '../parallel/pool.js'
import {mergeMicroBatches} from '../micro-batch.js'
import {runMicroBatches} from '../parallel/replica.js'
import {dataParallelStep} from '../parallel/step.js'
import {Rng} from '../rng.js'
import {Scheduler, type SchedulerConfig, type SchedulerState} from '../schedule.js'
import {applyAccumulatedAsync, Ema, GradientAccumulator} from '../step.js'
import type {EpochRecord, StageProgress, StageSpec} from './types.js'

export interface LoopLogger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  debug?(obj: object, msg?: string): void
}

/**
 * Where a test kill can land in the end-of-epoch commit sequence: `after-<file>` once that
 * checkpoint is written, `swap-<file>` between the two renames that put it in place.
 */
export const KILL_POINTS = ['swap-best', 'after-best', 'swap-ema', 'after-ema', 'swap-numbered', 'after-numbered', 'swap-last', 'after-last'] as const
export type KillPoint = (typeof KILL_POINTS)[number]

/** Test hooks (from UPS_TEST_FAULT): a NaN loss, a crash right after an epoch was saved, a hard kill. */
export interface FaultPlan {
  nanAt?: {stage: string; epoch: number}
  crashAfter?: {stage: string; epoch: number}
  killAt?: {stage: string; epoch: number; point: KillPoint}
  /** Ends the process as SIGKILL would (no cleanup); without it a kill point throws instead. */
  kill?: () => void
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
  /**
   * On resume: the epoch record the resumed checkpoint carries. A kill between the checkpoint and
   * onEpoch loses that epoch's log lines; the caller restores what is missing from this.
   */
  onResume?: (r: StoredEpochRecord) => Promise<void>
  fault?: FaultPlan
  /** Validation uses at most this many items (a fixed subset), default 4096. */
  validationCap?: number
  /** Data-parallel replicas (worker threads) of this stage's model; absent: the main thread alone. */
  pool?: ReplicaPool
  /** Micro-batches merged into one pass (micro-batch.ts; default 1: batch_size rows per pass). */
  microBatchMerge?: number
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
  /** Training items per second of step time over those epochs (null if none ran). */
  samplesPerSec: number | null
}

/** The epoch's record as saved in `<stage>.ckpt` (and numbered ones), with the clock when it was made. */
export interface StoredEpochRecord extends EpochRecord {
  time_ms: number
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
  epoch_record?: StoredEpochRecord
  [key: string]: unknown
}

export function optimizerConfig(s: ResolvedStage): OptimizerConfig {
  const o = s.optimizer
  return {type: o.name, lr: o.lr, weightDecay: o.weight_decay, betas: o.betas, eps: o.eps, momentum: o.momentum}
}

export function schedulerConfig(s: ResolvedStage): SchedulerConfig {
  const c = s.scheduler
  const warmupEpochs = c.warmup_epochs ?? 0
  switch (c.name) {
    case 'steplr':
      return {type: 'steplr', stepSize: c.step_size ?? 1, gamma: c.gamma, warmupEpochs}
    case 'cosineannealinglr':
      return {type: 'cosineannealinglr', tMax: c.t_max ?? Math.max(1, s.epochs - warmupEpochs), etaMin: c.eta_min, warmupEpochs}
    case 'reducelronplateau':
      return {type: 'reducelronplateau', factor: c.factor, patience: c.patience, minLr: c.min_lr, warmupEpochs}
    default:
      return {type: 'none', warmupEpochs}
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
 * With a pool the micro-batches are shared out over its replicas (parallel/step.ts).
 */
export async function optimizerStep(
  spec: StageSpec,
  group: number[][],
  rng: Rng,
  o: Omit<Parameters<typeof applyAccumulatedAsync>[1], 'store'>,
  injectNaN = false,
  pool?: ReplicaPool,
): Promise<{result: Awaited<ReturnType<typeof applyAccumulatedAsync>>; items: number}> {
  if (pool) return dataParallelStep(spec, group, rng, pool, o, injectNaN)
  // One replica draws every micro-batch from the stage's RNG in turn (runs before data-parallel training did the same).
  const acc = new GradientAccumulator(spec.store)
  const items = await runMicroBatches(spec, acc, group, () => rng, injectNaN)
  return {result: await applyAccumulatedAsync(acc, {...o, store: spec.store}), items}
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
    await completeCommit(c, {dir, stage, checkpointInterval: o.checkpointInterval, meta})
    if (meta.epoch_record) await o.onResume?.(meta.epoch_record)
  }
  // Incomplete or superseded swap folders: the newest state is now under a regular name.
  await removeSwapLeftovers(dir, stage)

  // Every read is asynchronous: the only form webgpu supports under Node, and no slower elsewhere.
  const fullPayload = async (meta: LoopMeta): Promise<CheckpointPayload> => {
    const opt = await optimizer.exportStateAsync('optim/')
    const tensors: NamedArray[] = [...(await spec.store.exportArraysAsync()), ...opt.arrays, ...(ema ? await ema.exportArraysAsync('ema/') : [])]
    return {tensors, epoch, step, rng: rng.getState(), optimizer: opt.state, scheduler: scheduler.state(), metadata: meta}
  }
  const validate = async (): Promise<number | null> => {
    const n = Math.min(spec.valItems, o.validationCap ?? 4096)
    if (n < 1) return null
    const valRng = new Rng(o.seed ^ 0x5a5a5a5a)
    let sum = 0
    for (const batch of chunk(Array.from({length: n}, (_, i) => i), settings.batch_size)) sum += (await spec.valLoss(batch, valRng)) * batch.length
    return sum / n
  }

  // A test kill at one point of the commit sequence of epoch `e` (UPS_TEST_FAULT kill:...).
  const killAt = (e: number, point: KillPoint): void => {
    const k = o.fault?.killAt
    if (!k || k.stage !== stage || k.epoch !== e || k.point !== point) return
    o.fault?.kill?.()
    throw new UserError(`Simulated kill at ${point} of ${stage} epoch ${e} (UPS_TEST_FAULT).`, {code: 'TRAIN_TEST_FAULT', exitCode: ExitCode.CHECK_FAILED})
  }
  const at = (e: number, file: 'best' | 'ema' | 'numbered' | 'last') => ({midSwap: () => killAt(e, `swap-${file}`)})

  const stepTimes: number[] = []
  let trainMs = 0
  let itemsTrained = 0
  try {
    while (!finished && epoch < settings.epochs) {
      const e = epoch + 1
      const t0 = o.clock()
      optimizer.lr = scheduler.lr
      const lr = optimizer.lr
      // Streamed data visits blocks of trajectories in a seeded order (blocks.ts); in memory: a plain permutation.
      const perm = spec.epochOrder ? spec.epochOrder(rng) : rng.permutation(spec.trainItems)
      const groups = chunk(chunk(perm, settings.batch_size), settings.accum_steps).map((g) => mergeMicroBatches(g, o.microBatchMerge ?? 1))
      let lossSum = 0
      let normSum = 0
      let items = 0
      for (let g = 0; g < groups.length; g++) {
        const inject = o.fault?.nanAt?.stage === stage && o.fault.nanAt.epoch === e && g === 0
        // Streamed data: the next step's blocks are read while this one runs.
        const ahead = g + 1 < groups.length ? spec.prefetch?.(groups[g + 1].flat(), groups[g].flat()) : undefined
        ahead?.catch(() => undefined)
        const {result: r, items: groupItems} = await optimizerStep(spec, groups[g], rng, {optimizer, clipNorm: settings.grad_clip, ema, context: {stage, epoch: e, step: step + 1}}, inject, o.pool)
        await ahead
        step += 1
        lossSum += r.loss * groupItems
        normSum += r.gradNorm
        items += groupItems
        o.onProgress?.({stage, epoch: e, epochs: settings.epochs, step: g + 1, steps: groups.length, items, totalItems: spec.trainItems, elapsedMs: o.clock() - t0})
      }
      const trainTime = o.clock() - t0
      logger.debug?.({stage, epoch: e, tensors: tf.memory().numTensors, bytes: tf.memory().numBytes}, 'tfjs memory after the epoch')
      const val = await validate()
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
      const stepTimeMs = trainTime / Math.max(1, groups.length)
      const epochRecord = (epochTime: number): EpochRecord => ({
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
      // The checkpoint carries the epoch's record (its time stops before the checkpoint writes),
      // so a kill before onEpoch logs it loses nothing: resume restores it (onResume).
      const recordedAt = o.clock()
      const meta: LoopMeta = {
        stage, kind: 'last', stage_settings_hash: settingsHash, best_val: bestVal, best_epoch: bestEpoch,
        epochs_since_improve: since, finished, stopped_early: stoppedEarly, ema_updates: ema?.updates ?? 0,
        epoch_record: {...epochRecord((recordedAt - t0) / 1000), time_ms: recordedAt},
      }
      // Order matters: `<stage>.ckpt` is the commit point, so it is written last.
      if (improved) {
        const m = await saveCheckpoint(ckptPath(dir, `${stage}_best`), {tensors: await spec.store.exportArraysAsync(), epoch, step, metadata: {stage, kind: 'best', val_loss: val}}, at(e, 'best'))
        hashes.best = m.weightsSha256
        killAt(e, 'after-best')
      }
      if (ema) {
        hashes.ema = (await saveCheckpoint(ckptPath(dir, `${stage}_ema`), {tensors: await ema.exportArraysAsync(), epoch, step, metadata: {stage, kind: 'ema'}}, at(e, 'ema'))).weightsSha256
        killAt(e, 'after-ema')
      }
      const payload = await fullPayload(meta)
      if (o.checkpointInterval > 0 && epoch % o.checkpointInterval === 0) {
        await saveNumberedCheckpoint(dir, stage, {...payload, metadata: {...meta, kind: 'numbered'}}, 3, at(e, 'numbered'))
        killAt(e, 'after-numbered')
      }
      hashes.last = (await saveCheckpoint(ckptPath(dir, stage), payload, at(e, 'last'))).weightsSha256
      killAt(e, 'after-last')
      stepTimes.push(stepTimeMs)
      trainMs += trainTime
      itemsTrained += items
      await o.onEpoch?.(epochRecord((o.clock() - t0) / 1000))
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
  const samplesPerSec = trainMs > 0 ? (itemsTrained * 1000) / trainMs : null
  return {stage, epochsDone: epoch, steps: step, bestVal, bestEpoch, stoppedEarly, resumedFrom, skippedCheckpoints: latest.skipped, hashes, stepTimeMs, samplesPerSec}
}

/**
 * A kill can land after a numbered checkpoint (or mid-swap of one) was written but before
 * `<stage>.ckpt` was: resume then starts from a checkpoint newer than `<stage>.ckpt`. Finish that
 * epoch's commit from it, byte for byte as the uninterrupted run wrote it; otherwise, when that was
 * the stage's final epoch, nothing rewrites `<stage>.ckpt` and it keeps the previous epoch.
 */
async function completeCommit(c: LoadedCheckpoint, at: {dir: string; stage: string; checkpointInterval: number; meta: LoopMeta}): Promise<void> {
  const {dir, stage, checkpointInterval, meta} = at
  const payload = (kind: LoopMeta['kind']): CheckpointPayload => ({
    tensors: c.tensors, epoch: c.epoch, step: c.step, rng: c.rng, optimizer: c.optimizer, scheduler: c.scheduler, metadata: {...meta, kind},
  })
  const last = ckptPath(dir, stage)
  const from = basename(c.path)
  if (from === basename(last)) return
  const numbered = numberedCheckpointPath(dir, stage, c.epoch)
  if (checkpointInterval > 0 && c.epoch % checkpointInterval === 0 && from !== basename(numbered)) {
    const intact = await loadCheckpoint(numbered).then((n) => n.step === c.step, () => false)
    if (!intact) await saveNumberedCheckpoint(dir, stage, payload('numbered'), 3)
  }
  await saveCheckpoint(last, payload('last'))
}

async function existingHash(dir: string, name: string): Promise<string> {
  try {
    return (await loadCheckpoint(ckptPath(dir, name))).manifest.weightsSha256
  } catch {
    return ''
  }
}
