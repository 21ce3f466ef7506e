/** Small pieces of the pipeline: the epoch line, test faults, OOM errors, clearing a stage, its folders, a lost history line. */
import {readdir, rm} from 'node:fs/promises'
import {isAbsolute, join, relative, resolve} from 'node:path'

import type {UpsConfig} from '../config/index.js'
import {type RunDir, type WandbMirror, historyWriter, readHistory} from '../tracking/index.js'
import {ExitCode, UserError} from '../util/errors.js'
import {removeStaleTempFiles} from '../util/fs.js'
import {DEFAULT_STALE_AFTER_MS} from '../util/lock.js'
import {type FaultPlan, KILL_POINTS, type KillPoint, type LoopLogger, type StoredEpochRecord} from './stages/loop.js'
import type {EpochRecord} from './stages/types.js'

const num = (v: number | null | undefined, digits = 4): string => (v === null || v === undefined ? '-' : Math.abs(v) >= 1e-3 && Math.abs(v) < 1e4 ? v.toPrecision(digits) : v.toExponential(2))

/** One human line per epoch. */
export function formatEpochLine(r: EpochRecord): string {
  const m = (k: string) => r.metrics[`${r.stage}/${k}`]
  return (
    `[${r.stage}] epoch ${r.epoch}/${r.epochs} loss ${num(m('loss'))} val ${num(m('val_loss'))} best ${num(m('best_loss'))}` +
    ` lr ${num(m('lr'), 3)} grad ${num(m('grad_norm'), 3)} ${num(m('epoch_time_sec'), 3)}s ${num(m('samples_per_sec'), 3)} samples/s` +
    ` step ${r.globalStep}${r.improved ? ' *' : ''}${r.stoppedEarly ? ' (early stop)' : ''}`
  )
}

/**
 * UPS_TEST_FAULT for tests and drills: `nan:<stage>:<epoch>` makes the first step of that epoch
 * produce a NaN loss; `crash:<stage>:<epoch>` fails the run right after that epoch was saved;
 * `kill:<stage>:<epoch>:<point>` ends the process with `kill` (SIGKILL in the CLI) at one point
 * of that epoch's checkpoint writes (KILL_POINTS, e.g. after-numbered, swap-last).
 */
export function parseFault(value: string | undefined, kill?: () => void): FaultPlan {
  const plan: FaultPlan = {}
  for (const part of (value ?? '').split(',').filter(Boolean)) {
    const [kind, stage, epoch, point] = part.split(':')
    const at = {stage, epoch: Number(epoch)}
    if (kind === 'nan') plan.nanAt = at
    if (kind === 'crash') plan.crashAfter = at
    if (kind === 'kill' && (KILL_POINTS as readonly string[]).includes(point)) plan.killAt = {...at, point: point as KillPoint}
  }
  if (plan.killAt) plan.kill = kill
  return plan
}

const OOM = /out of memory|cannot enlarge memory|maximum memory size|memory access out of bounds|array buffer allocation failed|failed to allocate|allocation failed|OOM/i

/** tfjs/wasm allocation failures as a UserError that names a batch size to try. */
export function outOfMemoryError(error: unknown, at: {stage: string; batch: number}): UserError | null {
  const message = (error as Error)?.message ?? String(error)
  if (error instanceof UserError || !OOM.test(message)) return null
  const smaller = Math.max(1, Math.floor(at.batch / 2))
  return new UserError(`Out of memory in stage ${at.stage} with batch size ${at.batch}: ${message.split('\n')[0].slice(0, 200)}.`, {
    code: 'TRAIN_OUT_OF_MEMORY',
    hint: `Try a smaller batch: --set stages.${at.stage}.batch_size=${smaller} (and --set stages.${at.stage}.accum_steps=2 to keep the effective batch), then resume with \`ups train CONFIG --run-dir RUN --resume\`.`,
    exitCode: ExitCode.CHECK_FAILED,
    cause: error,
    details: {stage: at.stage, batch_size: at.batch, suggested_batch_size: smaller},
  })
}

const DATA_SIZE = /value of "size" is out of range|data is too long|invalid typed array length|invalid array buffer length|array buffer allocation failed|cannot create a string longer/i

/**
 * Node's size caps (4 GiB per Buffer or typed array, 2 GiB per hash or file read) and failed
 * allocations of data arrays, as a UserError naming the knobs that shrink the data in memory.
 */
export function dataSizeError(error: unknown): UserError | null {
  const message = (error as Error)?.message ?? String(error)
  if (error instanceof UserError || !DATA_SIZE.test(message)) return null
  return new UserError(`The data does not fit in memory: ${message.split('\n')[0].slice(0, 200)}.`, {
    code: 'TRAIN_DATA_TOO_LARGE',
    hint: 'Lower data.memory_budget_mb (data larger than it is streamed from disk), or shrink the data: data.max_samples, a larger training.time_stride, training.latent_cache_dtype float16. Then resume with `ups train CONFIG --run-dir RUN --resume`.',
    exitCode: ExitCode.CHECK_FAILED,
    cause: error,
  })
}

/** Removes every checkpoint folder of a stage (last, best, ema, numbered, swap leftovers). */
export async function clearStageCheckpoints(dir: string, stage: string): Promise<void> {
  const esc = stage.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  const re = new RegExp(`^\\.?${esc}(?:_best|_ema|_epoch\\d+)?\\.ckpt(?:\\.[0-9a-z]+\\.(?:tmp|old))?$`)
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (re.test(name)) await rm(join(dir, name), {recursive: true, force: true})
  }
}

/** The checkpoint folder: checkpoint.dir relative to the run directory (an absolute one is not used). */
export function checkpointDirOf(config: UpsConfig, runDirPath: string): string {
  return resolve(runDirPath, config.checkpoint?.dir && !isAbsolute(config.checkpoint.dir) ? config.checkpoint.dir : 'checkpoints')
}

/** training.latent_cache_dir (relative to the working directory), else the run's own latent_cache/. */
export function latentCacheDirOf(config: UpsConfig, runDirPath: string, cwd: string): string {
  return config.training?.latent_cache_dir ? resolve(cwd, config.training.latent_cache_dir) : join(runDirPath, 'latent_cache')
}

/**
 * Removes the atomic-write temp files killed writers left in the checkpoint and latent cache
 * folders when they lie outside the run directory (taking the run's lock already cleaned the
 * inside). Such a folder may be shared with other runs, even other machines on a network disk,
 * where a pid says nothing: only temps of pids dead on this host and untouched for as long as a
 * lock heartbeat may lag are removed. Returns the removed paths.
 */
export async function removeOutsideTemps(dirs: string[], runDirPath: string, isAlive: (pid: number) => boolean, nowMs: number): Promise<string[]> {
  const outside = [...new Set(dirs.map((d) => resolve(d)))].filter((d) => {
    const rel = relative(resolve(runDirPath), d)
    return rel.startsWith('..') || isAbsolute(rel)
  })
  const removed: string[] = []
  for (const dir of outside) removed.push(...(await removeStaleTempFiles(dir, isAlive, {minAgeMs: DEFAULT_STALE_AFTER_MS, nowMs})))
  return removed
}

/** data.root (relative to the working directory), else $PDEBENCH_ROOT, else data/pdebench. */
export function trainDataRoot(config: UpsConfig, where: {cwd: string; env: Record<string, string | undefined>}): string {
  return resolve(where.cwd, config.data.root ?? where.env.PDEBENCH_ROOT ?? 'data/pdebench')
}

/**
 * A kill between an epoch's checkpoint and its history line loses the line: put it back from the
 * checkpoint, unless history.jsonl has it (same stage and epoch, logged after the checkpoint was made).
 */
export async function restoreEpochRecord(r: StoredEpochRecord, runDir: RunDir, logger: LoopLogger, sinks: {history: ReturnType<typeof historyWriter>; mirror?: WandbMirror}): Promise<void> {
  await sinks.history.sync()
  const {records} = await readHistory(runDir)
  const logged = records.some((h) => h.metrics.epoch === r.epoch && `${r.stage}/loss` in h.metrics && Date.parse(h.time) >= r.time_ms)
  if (logged) return
  await sinks.history.log(r.globalStep, {...r.metrics, epoch: r.epoch}, new Date(r.time_ms))
  await sinks.history.sync()
  await sinks.mirror?.log({...r.metrics}, r.globalStep)
  logger.warn({stage: r.stage, epoch: r.epoch}, `Restored the history record of ${r.stage} epoch ${r.epoch} from its checkpoint (the process was killed before logging it)`)
}
