/**
 * How many data-parallel replicas a stage's training step uses. Only wasm and cpu gain from
 * worker threads: tfjs-wasm is single-threaded under Node, so a second core idles without them;
 * GPU backends (and libtensorflow, which threads itself) keep one replica.
 */
import {ExitCode, UserError} from '../../util/errors.js'

export type WorkersSetting = 'auto' | number

export interface WorkersChoice {
  /** Replicas that compute micro-batches: the main thread plus replicas - 1 worker threads. */
  replicas: number
  /** Why, for the log and the run's metadata. */
  reason: string
}

export interface WorkersInputs {
  /** training.workers (undefined: auto). */
  setting: WorkersSetting | undefined
  backend: string
  /** Micro-batches per optimizer step: more replicas than that would idle. */
  accumSteps: number
  /** os.availableParallelism() of this machine. */
  cpus: number
  /** UPS_TRAIN_WORKERS overrides the config (tests, quick experiments). */
  envOverride?: string
}

const PARALLEL_BACKENDS = new Set(['wasm', 'cpu'])

export function parseWorkersSetting(value: string, source: string): WorkersSetting {
  if (value === 'auto') return 'auto'
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) {
    throw new UserError(`${source} must be "auto" or an integer >= 1, not "${value}".`, {
      code: 'TRAIN_WORKERS_INVALID',
      hint: 'Use e.g. UPS_TRAIN_WORKERS=2, or unset it to use training.workers from the config.',
      exitCode: ExitCode.USAGE,
    })
  }
  return n
}

export function resolveWorkers(i: WorkersInputs): WorkersChoice {
  const fromEnv = i.envOverride !== undefined && i.envOverride !== ''
  const setting = fromEnv ? parseWorkersSetting(i.envOverride!, 'UPS_TRAIN_WORKERS') : (i.setting ?? 'auto')
  const source = fromEnv ? 'UPS_TRAIN_WORKERS' : 'training.workers'
  if (!PARALLEL_BACKENDS.has(i.backend)) return {replicas: 1, reason: `${i.backend} backend: one replica (worker threads only help wasm/cpu)`}
  if (i.accumSteps < 2) return {replicas: 1, reason: 'accum_steps 1: one micro-batch per step runs on the main thread'}
  if (setting === 'auto') {
    const replicas = Math.max(1, Math.min(i.cpus, i.accumSteps))
    return {replicas, reason: `${source} auto: min(${i.cpus} CPU cores, accum_steps ${i.accumSteps})`}
  }
  const replicas = Math.min(setting, i.accumSteps)
  return {replicas, reason: `${source} ${setting}${replicas < setting ? ` capped at accum_steps ${i.accumSteps}` : ''}`}
}

export function describeReplicas(replicas: number): string {
  return replicas > 1 ? `data-parallel: ${replicas} replicas (main + ${replicas - 1} worker${replicas > 2 ? 's' : ''})` : 'data-parallel: off (1 replica, main thread)'
}
