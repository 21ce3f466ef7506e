/**
 * One ups process writes a run directory at a time: `ups run`, `ups resume`, `ups train` and
 * `ups eval` hold `<run_dir>/.ups.lock` while they write into it. A second one is refused at once
 * (RUNDIR_LOCKED, exit 1) instead of training the same epochs twice; the lock of a process that
 * died (kill -9) is reclaimed, and the atomic-write temp files it left are removed.
 */
import {join} from 'node:path'

import {removeStaleTempFiles} from '../util/fs.js'
import {acquireLock, type HeldLock, isPidAlive, type LockInfo, lockHolder} from '../util/lock.js'

export const RUN_LOCK_FILE = '.ups.lock'

export interface RunDirLock extends HeldLock {
  /** Temp files of dead writers removed when the lock was taken (first acquisition only). */
  removedTemps: string[]
}

export interface RunDirLockOptions {
  /** Told when a dead holder's lock is taken over. */
  onReclaim?: (previous: LockInfo | null, reason: string) => void
}

/**
 * Takes the run directory's lock. Reentrant within a process: `ups run` holds it while its
 * train and evaluate steps take it again.
 */
export async function lockRunDir(runDirPath: string, command: string, options: RunDirLockOptions = {}): Promise<RunDirLock> {
  const lock = await acquireLock(join(runDirPath, RUN_LOCK_FILE), {
    command, what: `run directory ${runDirPath}`, code: 'RUNDIR_LOCKED', reentrant: true, onReclaim: options.onReclaim,
  })
  let removedTemps: string[] = []
  try {
    if (lock.first) removedTemps = await removeStaleTempFiles(runDirPath, isPidAlive)
  } catch (error) {
    await lock.release()
    throw error
  }
  return Object.assign(lock, {removedTemps})
}

/** Runs `fn` holding the run directory's lock (lockRunDir), released however `fn` ends. */
export async function withRunDirLock<T>(runDirPath: string, command: string, fn: (lock: RunDirLock) => Promise<T>, options: RunDirLockOptions = {}): Promise<T> {
  const lock = await lockRunDir(runDirPath, command, options)
  try {
    return await fn(lock)
  } finally {
    await lock.release()
  }
}

/** The live process writing this run directory, or null (free, or its writer died). */
export async function runDirLockHolder(runDirPath: string): Promise<{info: LockInfo | null} | null> {
  return lockHolder(join(runDirPath, RUN_LOCK_FILE))
}
