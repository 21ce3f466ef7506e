/**
 * Advisory lock files: one writer per run directory, one leaderboard update at a time.
 *
 * A lock is a file created exclusively (`open(path, 'wx')`) holding JSON {pid, hostname,
 * started_at, command, boot_id}. It is stale when its process is gone: on this host (same boot)
 * when the pid no longer exists; from another host when its heartbeat (the file's mtime, touched
 * while held) is older than `staleAfterMs`. A stale lock is taken over under a second exclusive
 * file (`<lock>.reclaim`), so two processes reclaiming the same stale lock cannot both win.
 * Locks held by this process are released on exit, SIGINT and SIGTERM; a kill -9 leaves a lock
 * the next taker reclaims because its pid is dead.
 */
import {readFileSync, unlinkSync} from 'node:fs'
import {mkdir, open, readFile, stat, unlink, utimes} from 'node:fs/promises'
import {hostname as osHostname} from 'node:os'
import {dirname, resolve} from 'node:path'

import {ExitCode, UserError} from './errors.js'

export interface LockInfo {
  pid: number
  hostname: string
  started_at: string
  command: string
  /** Linux boot id: a pid from an earlier boot (a restarted container, say) is not this process. */
  boot_id?: string | null
}

/** Where the lock's side effects come from; tests replace them. */
export interface LockEnv {
  pid: number
  hostname: string
  bootId: string | null
  now: () => Date
  /** False when no process has this pid (kill(pid, 0) -> ESRCH). */
  isAlive: (pid: number) => boolean
  sleep: (ms: number) => Promise<void>
}

export interface AcquireOptions {
  /** Recorded in the lock and shown to whoever finds it held, e.g. `ups resume run_...`. */
  command: string
  /** Names the locked thing in messages, e.g. `run directory artifacts/runs/run_...`. */
  what: string
  /** Error code when it stays held (RUNDIR_LOCKED, LEADERBOARD_LOCKED). */
  code: string
  /** How long to wait for the holder before giving up (0: give up at once). */
  waitMs?: number
  pollMs?: number
  /** A lock from another host is stale after this long without a heartbeat. */
  staleAfterMs?: number
  /** A process that holds the lock may take it again (nested calls share one lock). */
  reentrant?: boolean
  /** Told when a stale lock is taken over (for a log line). */
  onReclaim?: (previous: LockInfo | null, reason: string) => void
  env?: Partial<LockEnv>
}

export interface HeldLock {
  path: string
  info: LockInfo
  /** True for the first (outermost) acquisition in this process. */
  first: boolean
  /** Why a stale lock was taken over, if one was. */
  reclaimed: string | null
  release(): Promise<void>
}

export const DEFAULT_STALE_AFTER_MS = 10 * 60_000
const HEARTBEAT_MS = 30_000
const RECLAIM_GRACE_MS = 10_000

interface Held {
  count: number
  info: LockInfo
  timer: NodeJS.Timeout
}

/** Locks this process holds, by absolute path (for reentrancy and release on signals). */
const held = new Map<string, Held>()

export function isPidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

let bootIdCache: string | null | undefined
function readBootId(): string | null {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null
    } catch {
      bootIdCache = null
    }
  }
  return bootIdCache
}

export function realLockEnv(): LockEnv {
  return {
    pid: process.pid, hostname: osHostname(), bootId: readBootId(), now: () => new Date(), isAlive: isPidAlive,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  }
}

/**
 * Why the lock in `info` (file modified at `mtimeMs`) is stale, or null while its holder may
 * still be running. `ownedHere`: this process holds that lock now.
 */
export function staleReason(info: LockInfo | null, mtimeMs: number, env: LockEnv, staleAfterMs: number, ownedHere: boolean): string | null {
  const age = env.now().getTime() - mtimeMs
  if (!info) return age > RECLAIM_GRACE_MS ? 'the lock file is empty or unreadable (its writer died while creating it)' : null
  const sameHost = info.hostname === env.hostname
  if (sameHost && info.boot_id && env.bootId && info.boot_id !== env.bootId) return `pid ${info.pid} ran before this machine restarted`
  if (sameHost) {
    if (info.pid === env.pid) return ownedHere ? null : `pid ${info.pid} is this process, which does not hold it (a pid reused after a restart)`
    return env.isAlive(info.pid) ? null : `pid ${info.pid} is no longer running`
  }
  return age > staleAfterMs ? `its holder on ${info.hostname} has not refreshed it for ${Math.round(age / 60_000)} min` : null
}

function parseInfo(text: string): LockInfo | null {
  try {
    const v = JSON.parse(text) as LockInfo
    return v && Number.isInteger(v.pid) && typeof v.hostname === 'string' ? v : null
  } catch {
    return null
  }
}

async function readLock(path: string): Promise<{info: LockInfo | null; mtimeMs: number} | null> {
  try {
    const [text, s] = await Promise.all([readFile(path, 'utf8'), stat(path)])
    return {info: parseInfo(text), mtimeMs: s.mtimeMs}
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw error
  }
}

/** Exclusive create with the holder's JSON; false when the file already exists. */
async function tryCreate(path: string, info: LockInfo): Promise<boolean> {
  let handle
  try {
    handle = await open(path, 'wx', 0o644)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  }
  try {
    await handle.writeFile(JSON.stringify(info) + '\n')
    await handle.sync()
  } finally {
    await handle.close()
  }
  return true
}

/**
 * Takes over a stale lock: under `<lock>.reclaim` (itself exclusive), re-read the lock and remove
 * it only if it is still the stale one judged. Returns false when someone else is reclaiming.
 */
async function reclaim(path: string, judged: string, check: () => Promise<string | null>, env: LockEnv): Promise<boolean> {
  const guard = `${path}.reclaim`
  const me: LockInfo = {pid: env.pid, hostname: env.hostname, started_at: env.now().toISOString(), command: 'reclaim', boot_id: env.bootId}
  if (!(await tryCreate(guard, me))) {
    // A reclaim takes milliseconds: a guard older than the grace period, or of a dead pid, is left over.
    const g = await readLock(guard)
    const age = g ? env.now().getTime() - g.mtimeMs : 0
    if (g && (age > RECLAIM_GRACE_MS || (g.info && g.info.pid !== env.pid && staleReason(g.info, g.mtimeMs, env, RECLAIM_GRACE_MS, false) !== null))) {
      await unlink(guard).catch(() => undefined)
    }
    return false
  }
  try {
    const current = await readLock(path)
    if (current && JSON.stringify(current.info) === judged && (await check()) !== null) await unlink(path).catch(() => undefined)
    return true
  } finally {
    await unlink(guard).catch(() => undefined)
  }
}

export function describeHolder(info: LockInfo | null): string {
  if (!info) return 'an unknown process (the lock file is empty)'
  return `pid ${info.pid} on ${info.hostname} (\`${info.command}\`, since ${info.started_at})`
}

/**
 * Who holds the lock at `path` now, without taking it: null when it is free or its holder is gone
 * (a stale lock counts as free, as `acquireLock` would reclaim it). `info` is null for a lock file
 * still being written.
 */
export async function lockHolder(path: string, options: {staleAfterMs?: number; env?: Partial<LockEnv>} = {}): Promise<{info: LockInfo | null} | null> {
  const abs = resolve(path)
  const current = await readLock(abs)
  if (!current) return null
  const env: LockEnv = {...realLockEnv(), ...options.env}
  return staleReason(current.info, current.mtimeMs, env, options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS, held.has(abs)) === null ? {info: current.info} : null
}

/** Takes the lock at `path`, waiting up to `waitMs` for its holder; a UserError when it stays held. */
export async function acquireLock(path: string, options: AcquireOptions): Promise<HeldLock> {
  const abs = resolve(path)
  const env: LockEnv = {...realLockEnv(), ...options.env}
  const staleAfter = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS
  const mine = held.get(abs)
  if (mine && options.reentrant) {
    mine.count++
    return handle(abs, mine.info, false, null)
  }
  const info: LockInfo = {pid: env.pid, hostname: env.hostname, started_at: env.now().toISOString(), command: options.command, boot_id: env.bootId}
  await mkdir(dirname(abs), {recursive: true})
  const deadline = env.now().getTime() + (options.waitMs ?? 0)
  let reclaimed: {previous: LockInfo | null; reason: string} | null = null
  for (;;) {
    if (await tryCreate(abs, info)) {
      held.set(abs, {count: 1, info, timer: heartbeat(abs)})
      installExitHandlers()
      // Told only now: between removing the stale lock and creating ours, another taker may win.
      if (reclaimed) options.onReclaim?.(reclaimed.previous, reclaimed.reason)
      return handle(abs, info, true, reclaimed && `${describeHolder(reclaimed.previous)}: ${reclaimed.reason}`)
    }
    const current = await readLock(abs)
    if (!current) continue // released between our create and our read
    const judge = async () => {
      const now = await readLock(abs)
      return now ? staleReason(now.info, now.mtimeMs, env, staleAfter, held.has(abs)) : null
    }
    const reason = staleReason(current.info, current.mtimeMs, env, staleAfter, held.has(abs))
    if (reason !== null) {
      if (await reclaim(abs, JSON.stringify(current.info), judge, env)) reclaimed = {previous: current.info, reason}
      else await env.sleep(options.pollMs ?? 100)
      continue
    }
    if (env.now().getTime() >= deadline) throw lockedError(abs, current.info, options)
    // Jitter keeps waiting writers from retrying in lockstep.
    await env.sleep((options.pollMs ?? 100) * (0.5 + Math.random()))
  }
}

function lockedError(path: string, info: LockInfo | null, options: AcquireOptions): UserError {
  const waited = options.waitMs ? ` (waited ${Math.round(options.waitMs / 1000)} s)` : ''
  return new UserError(`The ${options.what} is in use by ${describeHolder(info)}${waited}. Lock file: ${path}.`, {
    code: options.code,
    hint: `Wait for that process to finish, or stop it. When it has died the lock is reclaimed automatically (at once on the same machine; after ${Math.round((options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS) / 60_000)} min without a heartbeat from another machine); if you are sure nothing uses it, delete ${path}.`,
    exitCode: ExitCode.CHECK_FAILED,
    details: {lock: path, holder: info},
  })
}

function handle(abs: string, info: LockInfo, first: boolean, reclaimed: string | null): HeldLock {
  let released = false
  return {
    path: abs, info, first, reclaimed,
    async release() {
      if (released) return
      released = true
      const h = held.get(abs)
      if (!h || --h.count > 0) return
      held.delete(abs)
      clearInterval(h.timer)
      // Only remove our own lock: a reclaimer may have replaced it after a long stall.
      const current = await readLock(abs).catch(() => null)
      if (current?.info && current.info.pid === h.info.pid && current.info.started_at === h.info.started_at) await unlink(abs).catch(() => undefined)
    },
  }
}

/** Runs `fn` holding the lock; released however `fn` ends. */
export async function withLock<T>(path: string, options: AcquireOptions, fn: (lock: HeldLock) => Promise<T>): Promise<T> {
  const lock = await acquireLock(path, options)
  try {
    return await fn(lock)
  } finally {
    await lock.release()
  }
}

/** Touches the lock while held: other hosts judge staleness by its mtime. */
function heartbeat(abs: string): NodeJS.Timeout {
  const timer = setInterval(() => {
    const now = new Date()
    utimes(abs, now, now).catch(() => undefined)
  }, HEARTBEAT_MS)
  timer.unref()
  return timer
}

let handlersInstalled = false

/** Removes every lock this process holds, synchronously (exit and signal handlers cannot wait). */
function releaseAllSync(): void {
  for (const [abs, h] of held) {
    clearInterval(h.timer)
    try {
      const info = parseInfo(readFileSync(abs, 'utf8'))
      if (info?.pid === h.info.pid && info.started_at === h.info.started_at) unlinkSync(abs)
    } catch {
      // Already gone.
    }
  }
  held.clear()
}

function installExitHandlers(): void {
  if (handlersInstalled) return
  handlersInstalled = true
  process.on('exit', releaseAllSync)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = () => {
      releaseAllSync()
      // Then die of the signal as if we had not caught it (exit code 128 + n).
      process.removeListener(signal, onSignal)
      process.kill(process.pid, signal)
    }
    process.on(signal, onSignal)
  }
}
